"""Several venues in the app under Pilot: ``v`` cycles the view (all → Binance → Bybit → OKX),
the header names what is included, ``V`` stacks the levels by venue, and a venue that fails
is left out of the sum with a note in the header and the feed events."""

from __future__ import annotations

import re
import socket
from functools import partial

import pytest

pytest.importorskip("textual")

from helpers import header, pilot_until  # noqa: E402

from liqtui.feeds.settings import FeedSettings  # noqa: E402
from liqtui.feeds.venues import VENUES  # noqa: E402
from liqtui.sim.faults import Faults  # noqa: E402
from liqtui.sim.market import Market  # noqa: E402
from liqtui.sim.server import SimExchange  # noqa: E402
from liqtui.ui.app import AppOptions, LiqApp  # noqa: E402
from liqtui.ui.keys import IDS, keymap  # noqa: E402

SIZE = (120, 40)
FAST = FeedSettings(stale_timeout_s=2.0, backoff_cap_s=0.5, backoff_base_s=0.2, rest_retries=1)


until = partial(pilot_until, timeout=20.0)


def venue_part(app) -> str:
    """The header's venue (its short form when the line is full: "Binance")."""
    parts = header(app).split(" · ")
    return parts[1] if len(parts) > 1 else ""


def levels_text(app) -> str:
    return app.main.query_one("LevelsList").text


def showing(app, venues: tuple[str, ...]) -> bool:
    """The heatmap on screen is the sum of exactly ``venues``."""
    hm = app.view.hm
    return hm is not None and getattr(hm, "venues", None) == venues and app.view.pixels.any()


@pytest.fixture(scope="module")
def market():
    return Market(("BTCUSDT", "ETHUSDT"), 5, history_days=0.6, time_scale=30.0)


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def options(urls: dict, **kw) -> AppOptions:
    o = dict(venue_urls=urls, watchlist=("BTCUSDT", "ETHUSDT"), lookback_ms=43_200_000,
             range_name="12h", feed_settings=FAST)
    o.update(kw)
    return AppOptions(**o)


async def test_v_cycles_the_venues_and_the_header_names_them(market):
    sx = SimExchange(market)
    await sx.start("127.0.0.1", 0)
    try:
        urls = {v: (sx.rest_url, sx.ws_url) for v in VENUES}  # the sim serves every venue
        app = LiqApp(options(urls))
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: app.view.hm is not None and app.view.pixels.any())
            assert venue_part(app).startswith("Binance") and app.session.view == "binance"
            assert "+" not in venue_part(app)
            others = [v for v in VENUES if v != "binance"]
            for name in others:  # v: each venue in the registry's order
                await pilot.press("v")
                assert app.session.view == name
                assert await until(pilot, lambda n=name: venue_part(app).startswith(VENUES[n].label)
                                   and app.view.hm is app.feed.heatmap
                                   and app.view.hm is not None), header(app)
                if name == "bybit":
                    bybit_price = app.view.hm.reference_price
            await pilot.press("v")  # → all
            assert app.session.view == "all"
            assert await until(pilot, lambda: showing(app, tuple(VENUES))), header(app)
            assert venue_part(app) == "+".join(v.label for v in VENUES.values())
            # the sum sits on Binance's prices: Bybit's +0.04 % basis mapped away
            assert app.view.hm.reference_price < bybit_price
            # V stacks the levels by venue; again, back to one row per level
            await pilot.press("V")
            # each level's row names every venue's share (full labels, or initials when narrow)
            assert await until(pilot, lambda: any(
                line.count("%") == len(VENUES) for line in levels_text(app).splitlines()
                if "└" in line)), levels_text(app)
            await pilot.press("V")
            assert await until(pilot, lambda: "└" not in levels_text(app))
            await pilot.press("v")  # → binance again
            assert app.session.view == "binance"
            assert await until(pilot, lambda: venue_part(app).startswith("Binance")
                               and app.view.hm is app.feed.heatmap)
            # one feed per venue per live asset
            assert all(c.feeds["BTCUSDT"].live is not None
                       for c in app.session.venues.values())
    finally:
        await sx.stop()


async def test_a_failing_venue_is_left_out_with_a_note(market):
    """Bybit is served by an exchange whose every REST request fails (a sim fault), OKX by
    nothing at all: the sum is Binance's alone, and says so."""
    good = SimExchange(market)
    await good.start("127.0.0.1", 0)
    bad = SimExchange(Market(("BTCUSDT",), 5, history_days=0.6, time_scale=30.0),
                      Faults(http_5xx_rate=1.0))
    await bad.start("127.0.0.1", 0)
    try:
        dead = dead_url()
        urls = {"binance": (good.rest_url, good.ws_url), "bybit": (bad.rest_url, bad.ws_url),
                "okx": (dead, dead.replace("http", "ws"))}
        app = LiqApp(options(urls, venue="all"))
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: showing(app, ("binance",))), header(app)
            assert await until(pilot, lambda: "left out: Bybit, OKX" in header(app),
                               timeout=30), header(app)
            assert set(app.feed.dropped) == {"bybit", "okx"}
            assert venue_part(app) == "Binance"  # what the sum includes
            events = " ".join(e.text for e in app.session.events)
            assert "Bybit left out of the sum" in events and "OKX left out of the sum" in events
            # the app heard it from the session's events too: a notification per venue
            told = [n.message for n in app._notifications]
            assert any(m.startswith("Bybit left out of the sum") for m in told), told
            assert any(m.startswith("OKX left out of the sum") for m in told), told
            assert app.is_running
            # the feed events view lists them, with each venue's own errors
            await pilot.press("e")
            body = str(app.screen.query_one("#events-body").render())
            assert "left out of the sum" in body and "Bybit" in body
    finally:
        await good.stop()
        await bad.stop()


async def test_help_names_the_venue_keys_and_the_taker_share(market):
    app = LiqApp(options({"binance": ("http://127.0.0.1:9", "ws://127.0.0.1:9")}))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        text = " ".join(_plain(w.content) for w in app.screen.query("Static"))
        assert re.search(r"\bv\s+Venue\s+venue\b", text), text
        assert re.search(r"\bV\s+Levels by venue\s+stack_venues\b", text)
        assert "0.5 taker share" in text and "live steps use their trades" in text
        await pilot.press("escape")
        await pilot.press("v")  # one venue configured: a notification, no change
        await pilot.pause(0.1)
        assert any("only Binance is configured" in n.message for n in app._notifications)


def _plain(content) -> str:
    """A Static's content (text, or a Rich table) as plain text."""
    from rich.console import Console

    con = Console(width=200, record=True, file=open("/dev/null", "w"))
    con.print(content)
    return con.export_text()


def test_the_venue_key_is_remappable():
    assert IDS["venue"].keys == "v" and IDS["venue"].action == "cycle_venue"
    assert keymap({"venue": ("x", "config: [keys] venue")}) == {"venue": "x"}


def test_app_venue_flags():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "liqtui", "--venue", "all", "--rest-url",
                        "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "with --venue all set each venue's" in r.stderr
    r = subprocess.run([sys.executable, "-m", "liqtui", "--venue", "kraken"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice: 'kraken'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "liqtui", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert f"--venue {{{','.join(VENUES)},all}}" in r.stdout


def test_narrow_venue_shares_tell_every_venue_apart():
    """Binance and Bybit were both "B" when the stacked row was too narrow for full names."""
    from liqtui.ui.levels import _shares

    by = {v.label: 1.0 + i for i, v in enumerate(VENUES.values())}
    wide = _shares(by, sum(by.values()), 200)
    assert all(f"{v.label} " in wide for v in VENUES.values())
    narrow = _shares(by, sum(by.values()), 10)
    short = [part.rstrip("%0123456789") for part in narrow.removeprefix("  └ ").split()]
    assert len(short) == len(VENUES) and len(set(short)) == len(VENUES), narrow
    assert all(v.label.startswith(s) for s, v in zip(short, VENUES.values()))
