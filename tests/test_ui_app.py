"""The app shell under Pilot, against the simulated exchange started in-process (``--demo``'s
path) with a short history and a fast clock: keys, resize, asset switching, feed failure and
recovery, remapped keys, and the CLI's colour and config handling."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

pytest.importorskip("textual")

from helpers import header, pilot_until  # noqa: E402

from liqtui.config import ConfigError  # noqa: E402
from liqtui.feeds.settings import FeedSettings  # noqa: E402
from liqtui.ui.app import AppOptions, LiqApp  # noqa: E402
from liqtui.ui.keys import KEYS, KeymapError, keymap, normalize_key  # noqa: E402
from textual.widgets import Static  # noqa: E402

SIZE = (120, 40)
WATCH = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture(scope="session")
def sim_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sim-cache")


def options(sim_cache, **kw) -> AppOptions:
    o = dict(demo=True, demo_history_days=1.0, demo_time_scale=30.0, demo_cache_dir=sim_cache,
             watchlist=WATCH, lookback_ms=86_400_000, range_name="12h",
             feed_settings=FeedSettings(stale_timeout_s=2.0, backoff_cap_s=0.5,
                                        backoff_base_s=0.2))
    o.update(kw)
    return AppOptions(**o)


until = partial(pilot_until, timeout=15.0)


def painted(app) -> bool:
    v = app.view
    return v.hm is not None and v.pixels is not None and v.pixels.any()


async def test_demo_paints_header_heatmap_levels_and_map(sim_cache):
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app)), header(app)
        assert await until(pilot, lambda: "LIVE" in header(app))
        h = header(app)
        assert "BTCUSDT" in h and "DEMO" in h and "12h" in h
        assert "…$" in h  # the legend's USD of full yellow
        levels = app.main.query_one("LevelsList").text
        assert "price" in levels and ("long" in levels or "short" in levels)
        await pilot.pause(1.1)
        assert app.main.query_one("LiqMap").display
        assert app.first_paint is not None and app.first_paint < 15


async def test_every_key(sim_cache):
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app))
        # assets: ] [ 1…9
        await pilot.press("right_square_bracket")
        assert app.symbol == "ETHUSDT"
        assert await until(pilot, lambda: painted(app) and app.view.hm is app.feed.heatmap)
        assert "ETHUSDT" in header(app)
        await pilot.press("left_square_bracket")
        assert app.symbol == "BTCUSDT"
        # back to a live asset: its price is marked at once (not a live period later)
        assert app.view.hm is app.feed.heatmap and app.view.price is not None
        await pilot.press("3")
        assert app.symbol == "SOLUSDT"
        await pilot.press("9")  # beyond the watchlist: a notification, nothing else
        assert app.symbol == "SOLUSDT"
        await pilot.press("1")
        assert app.symbol == "BTCUSDT"
        # range, zoom
        await pilot.press("greater_than_sign")
        assert app.range_name == "24h"
        await pilot.press("less_than_sign", "less_than_sign")
        assert app.range_name == "12h"
        await pilot.press("plus")
        assert app.zoom > 1
        await pilot.press("minus", "minus")
        assert app.zoom < 1
        await pilot.press("0")
        assert app.zoom == 1
        # filters rebuild the model
        await pilot.press("l")
        assert await until(pilot, lambda: app.feed.series.params.tier_filter == "high")
        assert " high" in header(app)
        await pilot.press("s")
        assert await until(pilot, lambda: app.feed.series.params.side_filter == "long")
        assert await until(pilot, lambda: "short" not in app.main.query_one("LevelsList").text)
        await pilot.press("l", "l", "s", "s")
        assert await until(pilot, lambda: app.feed.series.params.tier_filter == "all"
                           and app.feed.series.params.side_filter == "both")
        before = app.threshold
        await pilot.press("t")
        assert app.threshold < before and app.view.scale.threshold == app.threshold
        await pilot.press("T", "T")
        assert app.threshold > before
        # pause
        await pilot.press("p")
        assert app.paused and "PAUSED" in header(app)
        await pilot.press("p")
        assert not app.paused
        # inspect cursor
        await pilot.press("left", "up")
        assert app.view.cursor is not None
        assert await until(pilot, lambda: app.main.query_one("#inspect").has_class("-on"))
        assert "inspect" in str(app.main.query_one("#inspect").render())
        await pilot.press("escape")
        assert app.view.cursor is None
        # help, built from the live bindings
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "next_asset" in text and "How this is estimated" in text
        await pilot.press("escape")
        await pilot.press("f1")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        # feed events
        await pilot.press("e")
        assert type(app.screen).__name__ == "FeedEventsScreen"
        await pilot.press("escape")
        # the command palette offers assets
        await pilot.press("ctrl+p")
        assert await until(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"Asset: ETH")
        await pilot.pause(0.5)
        await pilot.press("enter")
        assert await until(pilot, lambda: app.symbol == "ETHUSDT")
        # the asset picker
        await pilot.press("slash")
        assert type(app.screen).__name__ == "AssetPicker"
        await pilot.press("s", "o", "l", "enter")
        assert await until(pilot, lambda: app.symbol == "SOLUSDT")
        await pilot.press("q")
        assert await until(pilot, lambda: not app.is_running, timeout=5)


async def test_resize_collapses_and_never_crashes(sim_cache):
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app))
        side = app.main.query_one("#side")
        for size in ((80, 24), (60, 20), (40, 10), (20, 5), (200, 60), (81, 25), (120, 40)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.15)
            small = app.main.has_class("-too-small")
            assert small == (size[0] < 50 or size[1] < 12), size
            if size == (80, 24):
                assert side.has_class("-narrow") and app.main.query_one("LiqMap").has_class("-hidden")
                levels = app.main.query_one("LevelsList").text
                assert "price" in levels
                # the legend with the USD of full yellow stays in the 80-column header
                bar = app.main.query_one("HeaderBar")
                assert "0…$" in bar.plain and "BTCUSDT" in bar.plain
                assert "0…$" in str(bar.render())
            if size == (60, 20):
                assert side.has_class("-hidden")
        assert painted(app) and app.is_running


async def test_feed_failure_keeps_the_heatmap_and_recovers(sim_cache):
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app) and "LIVE" in header(app))
        hm = app.view.hm
        app.session.demo.exchange.faults.silent = True
        assert await until(pilot, lambda: any(s in header(app) for s in ("STALE", "RECONNECTING")),
                           timeout=10), header(app)
        assert app.view.hm is not None and painted(app) and app.is_running
        assert hm is not None
        app.session.demo.exchange.faults.silent = False
        assert await until(pilot, lambda: "LIVE" in header(app), timeout=15), header(app)
        events = " ".join(e.text for e in app.session.events)
        assert "STALE" in events or "RECONNECTING" in events


async def test_dropped_connections_recover(sim_cache):
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app) and "LIVE" in header(app))
        app.session.demo.exchange.faults.drop_every_s = 0.5
        assert await until(pilot, lambda: app.feed.live.counters["reconnects"] > 0, timeout=10)
        app.session.demo.exchange.faults.drop_every_s = None
        assert await until(pilot, lambda: "LIVE" in header(app), timeout=15), header(app)
        assert painted(app)


async def test_remapped_key(sim_cache):
    km = keymap({"next_asset": ("n", "config: [keys] next_asset")})
    app = LiqApp(options(sim_cache, keymap=km))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: app.feed is not None)
        await pilot.press("n")
        assert app.symbol == "ETHUSDT"
        await pilot.press("question_mark")
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "n" in text


# ------------------------------------------------------------------ keys and the CLI (no app)


def test_every_binding_has_a_unique_id():
    ids = [k.id for k in KEYS]
    assert len(ids) == len(set(ids)) and all(ids)
    for k in KEYS:
        for key in k.keys.split(","):
            assert normalize_key(key) == key


@pytest.mark.parametrize("table, expect", [
    ({"next_assett": ("n", "config x: [keys] next_assett")},
     "unknown binding id 'next_assett' (did you mean next_asset?)"),
    ({"next_asset": ("ctrl+nope", "config x: [keys] next_asset")}, "'ctrl+nope' is not a key"),
    ({"next_asset": ("hyperdrive+n", "config x: [keys] next_asset")}, "is not a key"),
])
def test_bad_keymap_names_the_value(table, expect):
    with pytest.raises(KeymapError) as e:
        keymap(table)
    assert expect in str(e.value) and str(e.value).startswith("config x: [keys]")


def test_keymap_accepts_characters_and_names():
    km = keymap({"help": ("?,f2", "w"), "zoom_in": ("+", "w"), "pause": ("ctrl+space", "w")})
    assert km == {"help": "question_mark,f2", "zoom_in": "plus", "pause": "ctrl+space"}


def _cli(args, env=None, timeout=30):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "liqtui", *args], capture_output=True,
                          text=True, timeout=timeout, env=e)


def test_bad_keys_config_exits_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[keys]\nnext_asset = "ctrl+nope"\n')
    r = _cli(["--demo", "--config", str(cfg)])
    assert r.returncode == 2 and "[keys] next_asset" in r.stderr and "ctrl+nope" in r.stderr
    cfg.write_text('[keys]\nwarp = "w"\n')
    r = _cli(["--demo", "--config", str(cfg)])
    assert r.returncode == 2 and "unknown binding id 'warp'" in r.stderr
    cfg.write_text('[ui]\nrange = "2h"\n')
    r = _cli(["--demo", "--config", str(cfg)])
    assert r.returncode == 2 and "[ui] range is '2h'" in r.stderr


def test_bad_flags_exit_2():
    r = _cli(["--range", "5h"])
    assert r.returncode == 2 and "--range is '5h'" in r.stderr
    r = _cli(["--rest-url", "ftp://x"])
    assert r.returncode == 2 and "--rest-url" in r.stderr
    r = _cli(["--colors", "fancy"])
    assert r.returncode == 2 and "--colors" in r.stderr


@pytest.mark.parametrize("flag, expect", [("256", "256"), ("16", "standard"),
                                          ("truecolor", "truecolor")])
def test_colors_flag_is_set_before_textual_is_imported(flag, expect, tmp_path):
    code = (
        "import os, sys\n"
        "class Finder:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'textual':\n"
        "            print('COLOR', os.environ.get('TEXTUAL_COLOR_SYSTEM'), flush=True)\n"
        "            os._exit(0)\n"
        "sys.meta_path.insert(0, Finder())\n"
        "from liqtui.cli import main\n"
        f"main(['--colors', '{flag}', '--demo'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_COLOR_SYSTEM"}
    env["XDG_CACHE_HOME"] = str(tmp_path)  # --demo starts generating its market first
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.stdout.strip().splitlines()[-1] == f"COLOR {expect}", r.stderr


async def test_backfill_failure_is_a_state_and_recovers(sim_cache):
    from liqtui.sim.faults import Faults

    faults = Faults(http_5xx_rate=1.0)
    fs = FeedSettings(stale_timeout_s=2.0, backoff_cap_s=0.5, backoff_base_s=0.2,
                      rest_retries=1, rest_backoff_base_s=0.05, rest_backoff_cap_s=0.1)
    app = LiqApp(options(sim_cache, demo_faults=faults, feed_settings=fs))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: "ERROR" in header(app), timeout=10), header(app)
        assert "error" in app.main.query_one("LevelsList").text
        assert app.is_running
        faults.http_5xx_rate = 0.0
        assert await until(pilot, lambda: painted(app) and "LIVE" in header(app), timeout=15)


async def test_unknown_asset_keeps_the_view_and_palettes_switch(sim_cache):
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app) and app.session.symbols)
        await pilot.press("slash", "z", "z", "q", "enter")
        await pilot.pause(0.2)
        assert app.symbol == "BTCUSDT" and painted(app)
        assert any("unknown symbol ZZQ" in n.message for n in app._notifications)
        for name in ("256", "16", "mono", "truecolor"):
            app.set_palette(name)
            await pilot.pause(0.05)
            assert app.view.palette.name == name and painted(app)


def test_ui_and_keys_tables(tmp_path):
    from liqtui.config import load_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('[ui]\nwatchlist = ["ethusdt", "BTCUSDT"]\nrange = "3d"\nlookback = "7d"\n'
                   '[keys]\nnext_asset = "n"\nhelp = ["?", "f2"]\n')
    s = load_settings(env={}, config_path=cfg)
    assert s.watchlist == ("ETHUSDT", "BTCUSDT")
    assert s.values["range"] == "3d" and s.values["lookback"] == 7 * 86_400_000
    assert keymap(s.keys) == {"next_asset": "n", "help": "question_mark,f2"}
    cfg.write_text('[ui]\nlookback = "90d"\n')
    with pytest.raises(ConfigError, match=r"\[ui\] lookback is '90d', expected a duration"):
        load_settings(env={}, config_path=cfg)
    cfg.write_text('[keys]\nhelp = 5\n')
    with pytest.raises(ConfigError, match=r"\[keys\] help is '5'"):
        load_settings(env={}, config_path=cfg)


# ------------------------------------------------------------------ unknown symbols


@pytest.fixture(scope="module")
def small_market():
    from liqtui.sim.market import Market

    return Market(("BTCUSDT", "ETHUSDT"), 3, history_days=0.5, time_scale=30.0)


async def test_unknown_watchlist_entry_is_a_notification_and_skipped(small_market):
    """Against the sim over real sockets (not --demo): the config's watchlist names a symbol
    the venue does not list; the app says so once and ] steps over it."""
    from liqtui.sim.server import SimExchange

    sx = SimExchange(small_market)
    await sx.start("127.0.0.1", 0)
    try:
        app = LiqApp(AppOptions(rest_url=sx.rest_url, ws_url=sx.ws_url,
                                watchlist=("BTCUSDT", "NOPEUSDT", "ETHUSDT"),
                                lookback_ms=43_200_000, range_name="12h"))
        async with app.run_test(size=SIZE) as pilot:
            # straight away, before the venue's list may have arrived: still refused
            app.switch_asset("ETHUSTD")
            assert await until(pilot, lambda: any("unknown symbol ETHUSTD" in n.message
                                                  for n in app._notifications))
            note = next(n.message for n in app._notifications if "ETHUSTD" in n.message)
            assert "did you mean ETHUSDT?" in note
            assert app.symbol == "BTCUSDT" and "ETHUSTD" not in app.session.feeds
            assert await until(pilot, lambda: any("NOPEUSDT not listed" in n.message
                                                  for n in app._notifications))
            assert app.options.watchlist == ("BTCUSDT", "ETHUSDT")
            await pilot.press("right_square_bracket")
            assert await until(pilot, lambda: app.symbol == "ETHUSDT")
            assert await until(pilot, lambda: painted(app) and app.view.hm is app.feed.heatmap)
            app.switch_asset("NOPEUSDT")
            await pilot.pause(0.1)
            assert app.symbol == "ETHUSDT" and painted(app)
    finally:
        await sx.stop()


async def test_older_lookback_failure_is_shown_and_retried_until_it_succeeds(sim_cache):
    """The displayed range arrives, then the venue fails (5xx, slowly) while the older part of
    the lookback is fetched: the header says so, the live view goes on, and the older part is
    fetched again with backoff until the whole lookback is there."""
    from liqtui.sim.faults import Faults

    faults = Faults(slow_ms=150)
    fs = FeedSettings(stale_timeout_s=5.0, rest_retries=0, rest_backoff_base_s=0.05,
                      rest_backoff_cap_s=0.1)
    app = LiqApp(options(sim_cache, demo_faults=faults, feed_settings=fs))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: app.feed is not None and app.feed.older is not None,
                           step=0.005)
        faults.http_5xx_rate = 1.0  # the older part's requests are in flight or still to come
        f = app.feed
        assert await until(pilot, lambda: "older history: retrying" in header(app)), header(app)
        assert painted(app) and app.is_running and f.older is not None
        first = f.series.steps["time"][0]
        faults.http_5xx_rate, faults.slow_ms = 0.0, 0.0
        assert await until(pilot, lambda: f.older is None, timeout=20), header(app)
        assert await until(pilot, lambda: "older history" not in header(app)), header(app)
        events = [e.text for e in app.session.events]
        assert any(t.startswith("older history: retrying in 2 s") for t in events)
        assert any(t.startswith("lookback complete") for t in events)
        steps = f.series.steps["time"]
        assert steps[0] < first
        assert steps[-1] - steps[0] >= 86_400_000 - 2 * 300_000  # the whole day's lookback
        assert (np.diff(steps) == 300_000).all()  # no gap where the failure was


async def test_no_color_draws_the_monochrome_view_and_every_key_works(sim_cache, monkeypatch):
    """NO_COLOR=1: Textual puts its monochrome filter over every line drawn, which takes a style
    from every segment (a segment without one crashed the levels list within 2 s)."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert app.no_color
        assert await until(pilot, lambda: painted(app) and "LIVE" in header(app)), header(app)
        assert app.view.palette.name == "mono"
        levels = app.main.query_one("LevelsList")
        assert "price" in levels.text and app.is_running
        for keys in (["right_square_bracket"], ["left_square_bracket"], ["v"], ["question_mark"],
                     ["escape"], ["left", "up"], ["escape"], ["e"], ["escape"]):
            await pilot.press(*keys)
            await pilot.pause(0.2)
            assert app.is_running and app._exception is None, keys
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.5)
        assert app.is_running and app._exception is None
        # every line of every widget on screen goes through the filter: none may lack a style
        for y in range(levels.size.height):
            assert all(s.style is not None for s in levels.render_line(y))


@pytest.mark.parametrize("value, seen", [("", "unset"), ("1", "'1'")])
def test_an_empty_no_color_is_ignored_before_textual_is_imported(value, seen, tmp_path):
    """no-color.org: only a non-empty NO_COLOR counts; Textual counts any, so the CLI drops an
    empty one before Textual is imported."""
    code = (
        "import os, sys\n"
        "class Finder:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'textual':\n"
        "            v = os.environ.get('NO_COLOR')\n"
        "            print('NO_COLOR', 'unset' if v is None else repr(v), flush=True)\n"
        "            os._exit(0)\n"
        "sys.meta_path.insert(0, Finder())\n"
        "from liqtui.cli import main\n"
        "main(['--demo'])\n"
    )
    env = dict(os.environ, NO_COLOR=value, XDG_CACHE_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.stdout.strip().splitlines()[-1] == f"NO_COLOR {seen}", r.stderr


class _Boom(Static):
    def render(self):
        raise RuntimeError("a widget that cannot draw")


def test_a_crash_in_the_app_gives_a_non_zero_exit_status(sim_cache, capsys):
    """The real app, run as the CLI runs it (``App.run()``), with a widget that fails to draw:
    Textual shows the traceback and ``return_code`` (what ``cmd_app`` returns) is 1, not 0."""

    class Crashing(LiqApp):
        def on_mount(self) -> None:
            self.mount(_Boom())

    app = Crashing(options(sim_cache))
    app.run(headless=True, size=SIZE)
    assert isinstance(app._exception, RuntimeError)
    assert app.return_code == 1
    assert "a widget that cannot draw" in capsys.readouterr().err


async def test_feed_events_opened_and_closed_at_once_keep_the_app(sim_cache):
    """`e` then esc in one burst dismissed the events screen before it mounted; its on_mount
    then queried a widget that was gone (NoMatches) and the app exited 1."""
    app = LiqApp(options(sim_cache))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: painted(app))
        for _ in range(5):
            app.action_feed_events()   # opened and dismissed before it mounts, as a burst
            app.screen.dismiss()       # of keys in a terminal does
            await pilot.pause(0.05)
        await pilot.press("e")
        await pilot.pause(0.2)
        assert app.is_running and app.return_code is None
        body = str(app.screen.query_one("#events-body").render())
        assert "backfilled" in body
