"""SymbolSeries (closed steps → model, forming step → provisional column) and `liqtui watch`."""

import asyncio
import os
import re
import sys

import numpy as np
import pytest

import liqtui.sim.market as sim_market
import liqtui.sim.server as sim_server
from liqtui.feeds.events import Bar, MarkPrice, OpenInterest
from liqtui.feeds.series import SymbolSeries
from liqtui.model import ModelParams, build_heatmap
from strategies import random_bars

STEP = 300_000


def _chunk(bars, a, b):
    return {k: v[a:b] for k, v in bars.items()}


def test_chunks_and_overlaps_equal_one_run():
    bars = random_bars(11, n_steps=600, long_gaps=0, short_gaps=0, bad_rows=0)
    whole = SymbolSeries("BTCUSDT", ModelParams(), lookback_ms=10**12)
    assert whole.extend(bars) == 600
    parts = SymbolSeries("BTCUSDT", ModelParams(), lookback_ms=10**12)
    assert parts.extend(_chunk(bars, 0, 250)) == 250
    assert parts.extend(_chunk(bars, 200, 450)) == 200   # 50 overlap, 200 new
    assert parts.extend(_chunk(bars, 450, 600)) == 150
    assert parts.extend(_chunk(bars, 590, 600)) == 0     # a repeated delivery adds nothing
    for k in ("time", "close", "open_interest"):
        np.testing.assert_array_equal(parts.steps[k], whole.steps[k])
    np.testing.assert_array_equal(parts.heatmap.columns, whole.heatmap.columns)


def test_a_newer_copy_of_a_step_replaces_the_older():
    bars = random_bars(12, n_steps=300, long_gaps=0, short_gaps=0, bad_rows=0)
    s = SymbolSeries("BTCUSDT", ModelParams(), lookback_ms=10**12)
    s.extend(bars)
    fixed = _chunk(bars, 299, 300)
    fixed["open_interest"] = fixed["open_interest"] * 1.01
    assert s.extend(fixed) == 0
    assert s.steps["open_interest"][-1] == fixed["open_interest"][0]
    assert len(s.steps["time"]) == 300


def test_lookback_window_slides():
    bars = random_bars(13, n_steps=400, interval_ms=STEP, long_gaps=0, short_gaps=0, bad_rows=0)
    s = SymbolSeries("BTCUSDT", ModelParams(), lookback_ms=100 * STEP)
    s.extend(bars)
    assert len(s.steps["time"]) == 100
    assert s.steps["time"][-1] == bars["time"][-1]
    ref = build_heatmap(_chunk(bars, 300, 400))
    np.testing.assert_array_equal(s.heatmap.columns, ref.columns)


def test_provisional_uses_the_forming_bar_and_the_mark_range():
    bars = random_bars(14, n_steps=300, interval_ms=STEP, long_gaps=0, short_gaps=0,
                       bad_rows=0, nan_oi_frac=0.0, nan_oi_runs=0, oi_crashes=0)
    s = SymbolSeries("BTCUSDT", ModelParams(), lookback_ms=10**12)
    s.extend(bars)
    end, price = s.end, s.heatmap.reference_price
    assert s.provisional(None, None) is None
    stale = Bar("binance", "BTCUSDT", end - STEP, STEP, price, price, price, price, 1, price, 0.5, False)
    assert s.provisional(stale, None) is None            # not newer than the closed steps
    forming = Bar("binance", "BTCUSDT", end, STEP, price, price * 1.001, price * 0.999, price,
                  2.0, 2.0 * price, price, False)
    quiet = s.provisional(forming, None)
    # a mark dip inside the forming step consumes long levels the trades did not reach: take
    # the highest long bin holding heat below the bar's low and dip the mark just under it
    longs = s.heatmap.state[:, 0].sum(axis=0)
    held = np.flatnonzero((longs > 0) & (s.heatmap.prices < price * 0.999))
    assert held.size
    s.mark(MarkPrice("binance", "BTCUSDT", end + 1000, float(s.heatmap.prices[held[-1]]) - 1.0))
    crash = s.provisional(forming, None)
    assert crash.consumed[0] > quiet.consumed[0]
    oi = OpenInterest("binance", "BTCUSDT", end + 2000, s.heatmap.last_open_interest + 50.0)
    grown = s.provisional(forming, oi)
    assert grown.net == pytest.approx(50.0 + grown.consumed.sum())


# ------------------------------------------------------------------ `liqtui watch` end to end

@pytest.fixture(scope="module")
def market():
    return sim_market.Market(("BTCUSDT",), seed=5, history_days=1.5, time_scale=60.0)


async def test_watch_follows_the_sim_and_stops_cleanly(market):
    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        env = dict(os.environ, NO_COLOR="1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "liqtui", "watch", "--symbol", "btcusdt", "--range", "12h",
            "--rest-url", sx.rest_url, "--ws-url", sx.ws_url, "--every", "1",
            "--duration", "12", "--top", "3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await sx.stop()
    text, err = out.decode(), err.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in text + err
    assert re.search(r"backfilled 14[34] closed steps", text)  # 12 h of 5-minute steps
    assert " LIVE" in text
    assert "provisional peak bins" in text
    # at 60× a 5-minute step closes every 5 s: at least one rebuild arrives within 12 s
    assert "model rebuilt" in text
    assert text.rstrip().splitlines()[-1].startswith("stopped · frames")


async def _watch(sx, *argv, env=None, timeout=120):
    env = dict(os.environ, NO_COLOR="1", **(env or {}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liqtui", "watch", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def test_watch_follows_every_venue_summed(market):
    """``--venue all``: every venue of the registry backfills and goes live, each line names
    its venue, and the levels are the sum's (the same lines as for one venue)."""
    from liqtui.feeds.venues import VENUES

    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        env = {k: v for name in VENUES for k, v in (
            (VENUES[name].env_rest, sx.rest_url), (VENUES[name].env_ws, sx.ws_url))}
        rc, text, err = await _watch(sx, "--symbol", "BTCUSDT", "--venue", "all", "--range",
                                     "12h", "--every", "1", "--duration", "12", "--top", "3",
                                     env=env)
    finally:
        await sx.stop()
    assert rc == 0, err
    assert "Traceback" not in text + err and err == ""
    assert "+".join(v.label for v in VENUES.values()) in text.splitlines()[0]
    for v in VENUES.values():
        assert re.search(rf"^{v.label} backfilled 14[34] closed steps", text, re.M), v.name
        assert re.search(rf"^\d\d:\d\d:\d\d {v.label} LIVE", text, re.M), v.name
    assert "provisional peak bins" in text and "model rebuilt" in text
    assert re.search(r"^#\s+price\s+side\s+usd", text, re.M)  # the levels table, the sum's
    labels = "+".join(v.label for v in VENUES.values())
    assert re.search(rf"^BTCUSDT · {re.escape(labels)} · price", text, re.M)
    assert "by venue: each level's USD per venue" in text
    assert text.rstrip().splitlines()[-1].startswith("stopped · frames")


async def test_watch_one_other_venue_and_url_rules(market):
    """Bybit alone works as Binance does; --rest-url with --venue all is refused (exit 2)."""
    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        rc, text, err = await _watch(sx, "--symbol", "BTCUSDT", "--venue", "bybit",
                                     "--rest-url", sx.rest_url, "--ws-url", sx.ws_url,
                                     "--every", "1", "--duration", "4", "--top", "3")
        rc2, _, err2 = await _watch(sx, "--symbol", "BTCUSDT", "--venue", "all",
                                    "--rest-url", sx.rest_url)
    finally:
        await sx.stop()
    assert rc == 0, err
    assert "Bybit linear perpetuals" in text.splitlines()[0]
    assert re.search(r"^BTCUSDT · Bybit linear perpetuals · price", text, re.M)  # its levels
    assert re.search(r"^backfilled \d+ closed steps", text, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d LIVE", text, re.M)  # one venue: no label
    assert rc2 == 2 and "--rest-url/--ws-url name one venue's URL" in err2


async def test_watch_unknown_symbol_exits_2(market):
    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "liqtui", "watch", "--symbol", "NOPEUSDT",
            "--rest-url", sx.rest_url, "--ws-url", sx.ws_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await sx.stop()
    assert proc.returncode == 2
    assert "NOPEUSDT" in err.decode() and "Traceback" not in err.decode()
