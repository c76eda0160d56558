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


def _usd(usd: np.ndarray, prices: np.ndarray, lo: float, hi: float) -> float:
    """USD of the bins whose centres lie in [lo, hi]."""
    return float(usd[(prices >= lo) & (prices <= hi)].sum())


def _displacement(ref: np.ndarray, other: np.ndarray, reach: int = 3) -> int:
    """The whole-bin shift d (−reach..reach) for which ``other[i + d]`` is closest to
    ``ref[i]`` over the grid (least L1 distance): 0 when both hold their USD at the same
    prices."""
    n = len(ref)
    a = ref[reach:n - reach]
    l1 = [np.abs(other[reach + d:n - reach + d] - a).sum() for d in range(-reach, reach + 1)]
    return int(np.argmin(l1)) - reach


#: how far a window's USD may leave what one bin either way allows (see the docstring)
WINDOW_TOL = 0.03


def _disagreements(by0: np.ndarray, by1: np.ndarray, prices: np.ndarray, levels, w: float,
                   usd: bool = True) -> list[str]:
    """Where a venue's (2, B) USD on the reference grid, already divided by its share, is not
    Binance's ``by0``: a side displaced by whole bins; with ``usd``, around each of Binance's
    ``levels`` (its bins ± 3 bins, and the parts below and above its price) USD outside
    [Binance's USD with one bin less at each end, with one bin more] by ``WINDOW_TOL``."""
    out = []
    for s, side in enumerate(("long", "short")):
        if not (by0[s].any() and by1[s].any()):  # nothing on one venue: no prices to compare
            continue
        d = _displacement(by0[s], by1[s])
        if d:
            out.append(f"{side}s displaced by {d:+d} bins")
    if not usd:
        return out
    for lv in levels:
        s = 0 if lv.side == "long" else 1
        lo, hi = lv.low - 3 * w, lv.high + 3 * w
        cut = round(lv.price / w) * w  # the bin edge nearest the level's price
        for a, b in ((lo, hi), (lo, cut), (cut, hi)):
            inner, outer = _usd(by0[s], prices, a + w, b - w), _usd(by0[s], prices, a - w, b + w)
            u = _usd(by1[s], prices, a, b)
            if not inner * (1 - WINDOW_TOL) <= u <= outer * (1 + WINDOW_TOL):
                out.append(f"{lv.side} {lv.price:.0f}, [{a:.0f}, {b:.0f}]: {u:.0f} not in "
                           f"[{inner:.0f}, {outer:.0f}] ±{WINDOW_TOL:.0%}")
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_one_market_on_every_venue_gives_the_same_levels(backfills, alpha):
    """Every venue serves the same traders' market: prices × (1 + basis), open interest ×
    its share (liqtui/sim/venues.py). The model is linear in open interest and the basis
    mapping undoes the price factor, so each venue's levels are Binance's, scaled, up to one
    bin: each venue splits a deposit between the two nearest centres of its own grid, and
    consumes a bin when its own price crosses that bin's centre; the basis puts the venue's
    centres a fraction of a bin off Binance's (OKX's −0.03 % is 1.49 bins at $99k: its grid
    sits half a bin off, the worst case; Bybit's +0.04 % is 1.96 bins, nearly whole), and
    the mapping moves each venue bin whole. So a deposit lands within one bin of where Binance
    put it, and a bin at the edge of a price's reach is consumed on one venue and not on the
    other. A single bin can then differ many-fold (at NOW: $12k on Binance, $107k on OKX at
    $98,930), and so can the edge bin of a fixed window.

    Tolerances, and why (measured on 8 seeds × 17 instants, NOW − 12 h … NOW + 12 h, $20 bins):
    * per side, a venue's total USD is share × (1 + basis) × Binance's within 1 % when
      α = 0 (every venue splits new positions 50/50): what differs is the venues' wire
      rounding and the one-bin effects above (measured ≤ 0.93 %);
    * with α = 1 Binance splits by its candles' taker-buy share but Bybit and OKX candles
      have none (0.5 in backfill): the sides differ, and since longs die on dips and shorts
      on rallies, what survives differs too, by as much as the window's taker flow makes it
      (measured 0–14 %: no tolerance would be a property of the venues). Bybit and OKX, both
      without taker share, still hold their shares of each other per side within 1 %
      (measured ≤ 0.75 %, the same at α = 0);
    * each venue's USD sits at Binance's prices: per side, the whole-bin shift that brings it
      closest to Binance's (L1) is 0, at either α (measured: always 0; unmapped, OKX's is −1
      or −2 and Bybit's +2 in every case). A side empty on one venue (at α = 1 Binance's
      taker split emptied its longs in one of the windows) has no prices to compare;
    * around each of Binance's 5 largest levels (its bins ± 3 bins), and in the parts of that
      window below and above the level's price, the venue's USD over its share, when α = 0,
      lies between Binance's USD in the window with one bin less at each end and with one
      bin more, within 3 %: one bin either way is what the model allows, the 3 % covers what
      that does not, a bin consumed on one venue only (measured ≤ 2.0 %). The sum of the
      venues is held to the same rule. Comparing the window itself
      within 5 % (as this test did) failed for OKX on 54 % of the instants, by up to 17 %
      (at NOW: 9.6 %, the window's edge bin holding 648k on Binance and 352k on OKX), and
      the USD-weighted prices within half a bin on 15 % (up to 1.08 bins).
    Able to fail: test_the_comparison_sees_an_unmapped_or_lagging_venue.
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
    scale = {v: SHAPES[v].oi_share * SHAPES[v].k for v in COMPARED}
    for i, v in enumerate(COMPARED, 1):
        if alpha == 0.0:
            sides = by[i].sum(axis=1) / by[0].sum(axis=1)
            assert sides == pytest.approx([scale[v], scale[v]], rel=0.01), v
        assert _disagreements(by[0], by[i] / scale[v], agg.prices, ref.levels(5), w,
                              usd=alpha == 0.0) == [], v
    # the venues without taker share in their candles agree with each other at either α
    plain = [(i, v) for i, v in enumerate(COMPARED, 1) if not VENUES[v].taker_in_candles]
    for (i, a), (j, b) in zip(plain, plain[1:]):
        assert by[j].sum(axis=1) / by[i].sum(axis=1) == pytest.approx(
            [scale[b] / scale[a]] * 2, rel=0.01), (a, b)
    # the sum holds 1 + Σ shares of Binance's USD around each level, one bin either way
    total = 1 + sum(scale.values())
    for lv in ref.levels(5):
        s = 0 if lv.side == "long" else 1
        lo, hi = lv.low - 3 * w, lv.high + 3 * w
        us = _usd(agg.usd(side=lv.side), agg.prices, lo, hi)
        if alpha == 0.0:
            inner = _usd(by[0, s], agg.prices, lo + w, hi - w)
            outer = _usd(by[0, s], agg.prices, lo - w, hi + w)
            assert inner * total * (1 - WINDOW_TOL) <= us <= outer * total * (1 + WINDOW_TOL)
        assert us > _usd(by[0, s], agg.prices, lo, hi)


def test_the_comparison_sees_an_unmapped_or_lagging_venue(backfills):
    """The comparison above allows one bin either way; it still fails for a venue left
    unmapped (OKX's −0.03 %: 1.5 bins; Bybit's +0.04 %: 2 bins) and for OKX's prices one step
    late against its open interest (the totals stay within 1 % there: only the levels show
    it). Measured on the 136 windows of the docstring above: unmapped, the displacement is
    found in all of them; the lag fails a level's window in 97 %."""
    from liqtui.model import ModelParams, build_heatmap
    from liqtui.model.venues import aggregate

    w = 20.0
    p = ModelParams(alpha=0.0, bin_width=w)
    ref = build_heatmap(backfills["binance"], p)
    levels = ref.levels(5)

    def compared(v, bars, unmapped=False):
        hm = build_heatmap(bars, p)
        agg = aggregate({"binance": ref, v: hm}, {"binance": backfills["binance"], v: bars})
        by = agg.usd_by_venue()
        mine = (np.stack([agg.map_column(v, hm.usd(side=s), ratio=1.0) for s in ("long", "short")])
                if unmapped else by[1])
        return _disagreements(by[0], mine / (SHAPES[v].oi_share * SHAPES[v].k), agg.prices,
                              levels, w)

    for v in COMPARED:
        assert compared(v, backfills[v]) == []
        assert any("displaced" in d for d in compared(v, backfills[v], unmapped=True)), v
    late = {k: np.array(x, copy=True) for k, x in backfills["okx"].items()}
    for k in ("open", "high", "low", "close", "mark_high", "mark_low", "quote_volume"):
        late[k] = np.r_[late[k][0], late[k][:-1]]
    assert any("displaced" not in d for d in compared("okx", late))
