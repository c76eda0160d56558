"""`liqtui levels --venue …` against one simulated market served by every venue on one port
(the simulator in-process, the real REST clients over loopback sockets), and the consistency
of the venues' levels."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest

from helpers import CACHE, NOW
from liqtui.cli import main
from liqtui.feeds.venues import VENUES
from liqtui.sim.market import Market
from liqtui.sim.server import SimExchange
from liqtui.sim.venues import SHAPES

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture(scope="module")
def sim():
    """The simulated exchange on its own event loop in a thread, so the CLI under test can run
    ``asyncio.run`` in the test's thread as it does for a user."""
    # a fixed instant, the clock stopped: the 24 h window every venue serves is the same one
    # each run (at the current time it moved, and the levels compared moved with it)
    market = Market(("BTCUSDT",), seed=11, history_days=1.6, time_scale=1.0, now_ms=NOW,
                    cache_dir=CACHE[0] if CACHE else None)
    market.set_now(NOW)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sim", daemon=True)
    thread.start()
    sx = SimExchange(market)
    asyncio.run_coroutine_threadsafe(sx.start(), loop).result(60)
    yield sx
    asyncio.run_coroutine_threadsafe(sx.stop(), loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def every_venue_at(monkeypatch, url: str, **override) -> None:
    for v in VENUES.values():
        monkeypatch.setenv(v.env_rest, override.get(v.name, url))


def levels(capsys, *argv):
    rc = main(["levels", "--symbol", "BTCUSDT", "--range", "12h", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def closed_port() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------ liqtui levels --venue


def test_one_venue_keeps_schema_1_as_it_was(capsys, sim):
    rc, out, err = levels(capsys, "--venue", "binance", "--rest-url", sim.rest_url, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["venues"] == ["binance"] and "dropped" not in doc
    assert doc["levels"] and all("by_venue" not in lv for lv in doc["levels"])
    assert set(doc["levels"][0]) == {"price", "side", "usd", "distance_pct", "cumulative_usd", "tiers"}


def test_all_venues_sum_and_say_who_is_in(capsys, sim, monkeypatch):
    every_venue_at(monkeypatch, sim.rest_url)
    rc, out, err = levels(capsys, "--venue", "all", "--json", "--top", "5")
    assert rc == 0, err
    doc = json.loads(out)
    named = set(doc["venues"]) | {d["venue"] for d in doc["dropped"]}
    assert named == set(VENUES) and doc["venues"][0] == "binance"
    for d in doc["dropped"]:  # each left-out venue is said on stderr too
        assert f"liqtui: warning: {d['venue']} left out of the sum: " in err
    for lv in doc["levels"]:
        assert set(lv["by_venue"]) == set(doc["venues"])
        assert sum(lv["by_venue"].values()) == pytest.approx(lv["usd"], abs=0.05)
    by = doc["totals"]["by_venue"]
    assert sum(x["long_usd"] for x in by.values()) == pytest.approx(doc["totals"]["long_usd"], abs=0.1)
    # the text table names the venues in its first line and stacks each level by venue
    rc, out, err = levels(capsys, "--venue", "all", "--top", "3")
    assert rc == 0
    title = "+".join(VENUES[v].label for v in doc["venues"])
    assert out.splitlines()[0].startswith(f"BTCUSDT · {title} · price ")
    assert "by venue: each level's USD per venue" in out


def test_a_failing_venue_is_dropped_with_a_note(capsys, sim, monkeypatch):
    dead = closed_port()
    every_venue_at(monkeypatch, sim.rest_url, okx=dead)
    rc, out, err = levels(capsys, "--venue", "all", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert "okx" not in doc["venues"] and "binance" in doc["venues"]
    (why,) = [d["reason"] for d in doc["dropped"] if d["venue"] == "okx"]
    assert why.startswith(("REST at " + dead, "no client for this venue"))
    assert f"liqtui: warning: okx left out of the sum: {why}" in err
    # every venue failing is an error, not an empty table
    every_venue_at(monkeypatch, dead)
    rc, out, err = levels(capsys, "--venue", "all")
    assert rc == 1 and out == ""
    assert all(f"liqtui: error: {v}" in err for v in VENUES)
    assert "Traceback" not in err


def test_venue_flags_are_checked(capsys, sim, monkeypatch):
    from liqtui.cli import VENUE_NAMES

    assert VENUE_NAMES == tuple(VENUES)  # the CLI's choices are the registry's venues
    rc, _, err = levels(capsys, "--venue", "all", "--rest-url", sim.rest_url)
    assert rc == 2 and "--rest-url names one venue's URL" in err and "LIQTUI_OKX_REST_URL" in err
    monkeypatch.setenv("LIQTUI_BYBIT_REST_URL", "ftp://nope")
    rc, _, err = levels(capsys, "--venue", "all")
    assert rc == 2 and "LIQTUI_BYBIT_REST_URL 'ftp://nope'" in err
    with pytest.raises(SystemExit) as e:
        main(["levels", "--symbol", "BTCUSDT", "--venue", "kraken"])
    assert e.value.code == 2
    assert "invalid choice: 'kraken'" in capsys.readouterr().err


# ------------------------------------------------------------------ consistency across venues

COMPARED = tuple(v for v in VENUES if v != "binance")  # each against Binance


@pytest.fixture(scope="module")
def backfills(sim):
    """24 h of closed steps from every venue, fetched by the real clients."""
    async def fetch(name):
        rest = VENUES[name].rest_class()(sim.rest_url)
        try:
            info = await rest.symbol("BTCUSDT")
            return await rest.backfill(info.symbol, lookback_ms=24 * 3_600_000)
        finally:
            await rest.close()

    async def every():
        names = ("binance", *COMPARED)
        return dict(zip(names, await asyncio.gather(*(fetch(n) for n in names))))
    return asyncio.run(every())


def _window(usd: np.ndarray, prices: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(USD, USD-weighted mean price) of the bins whose centres lie in [lo, hi]."""
    sel = (prices >= lo) & (prices <= hi)
    total = float(usd[sel].sum())
    return total, float((usd[sel] * prices[sel]).sum() / total) if total else float("nan")


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_one_market_on_every_venue_gives_the_same_levels(backfills, alpha):
    """Every venue serves the same traders' market: prices × (1 + basis), open interest ×
    its share (liqtui/sim/venues.py). The model is linear in open interest and the basis
    mapping undoes the price factor, so each venue's levels are Binance's, scaled.

    Tolerances, and why:
    * per side, a venue's total USD is share × (1 + basis) × Binance's within 1 % when
      α = 0 (every venue splits new positions 50/50): what differs is the venues' wire
      rounding and where a deposit falls between two bin centres (the basis moves it by a
      fraction of a bin, which changes which step consumes it);
    * with α = 1 Binance splits by its candles' taker-buy share but Bybit and OKX candles
      have none (0.5 in backfill): the sides differ, and since longs die on dips and shorts
      on rallies, what survives differs too; both sides together keep the proportion within
      5 % (measured 0.1–1.4 % on different 24 h windows);
    * around each of Binance's 5 largest levels (its bins ± three bins, so a cluster cut a bin
      apart on two venues is still compared whole) the venue holds its share of the USD
      within 5 % when α = 0 (measured: ≤ 3 %; the edge bins are where the fractional shifts
      above show), and its USD-weighted price is within half a bin of Binance's (measured:
      ≤ 0.32 bin; unmapped, Bybit's +0.04 % would put it 0.4–1.2 bins off): the same prices
      after basis mapping. With α = 1 the venues' different long/short splits change which
      tiers survive in a window, so the price is held to one bin (measured up to 0.71).
    """
    from liqtui.model import ModelParams, build_heatmap
    from liqtui.model.venues import aggregate

    # a $20 grid: Bybit's +0.04 % basis is 2 bins at $98k (OKX's −0.03 %, 1.5), so unmapped
    # bands would miss
    w = 20.0
    p = ModelParams(alpha=alpha, bin_width=w)
    ref = build_heatmap(backfills["binance"], p)
    heatmaps = {"binance": ref} | {v: build_heatmap(backfills[v], p) for v in COMPARED}
    agg = aggregate(heatmaps, backfills)
    assert agg.venues == ("binance", *COMPARED) and agg.dropped == {}
    by = agg.usd_by_venue()  # (V, 2, B)
    for i, v in enumerate(COMPARED, 1):
        shape = SHAPES[v]
        scale = shape.oi_share * shape.k
        sides = by[i].sum(axis=1) / by[0].sum(axis=1)
        if alpha == 0.0:
            assert sides == pytest.approx([scale, scale], rel=0.01), v
        assert by[i].sum() / by[0].sum() == pytest.approx(scale, rel=0.01 if alpha == 0 else 0.05), v
        for lv in ref.levels(5):
            s = 0 if lv.side == "long" else 1
            u0, p0 = _window(by[0, s], agg.prices, lv.low - 3 * w, lv.high + 3 * w)
            u1, p1 = _window(by[i, s], agg.prices, lv.low - 3 * w, lv.high + 3 * w)
            assert abs(p1 - p0) <= (w / 2 if alpha == 0.0 else w), (v, lv.price)
            if alpha == 0.0:
                assert u1 / u0 == pytest.approx(scale, rel=0.05), (v, lv.price)
    # the sum holds 1 + Σ shares of Binance's USD around each level
    total = 1 + sum(SHAPES[v].oi_share * SHAPES[v].k for v in COMPARED)
    for lv in ref.levels(5):
        s = 0 if lv.side == "long" else 1
        u0, _ = _window(by[0, s], agg.prices, lv.low - 3 * w, lv.high + 3 * w)
        us, _ = _window(agg.usd(side=lv.side), agg.prices, lv.low - 3 * w, lv.high + 3 * w)
        if alpha == 0.0:
            assert us == pytest.approx(u0 * total, rel=0.05)
        assert us > u0
