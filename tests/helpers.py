"""What the simulator and feed tests share: waiting for a condition, scripted markets, reading
frames off a socket, and a real live client running in a task with everything it reported.

The fixtures that start the simulated exchange and open a client session are in conftest.py
(``exchange``, ``http``); the market each module serves stays in the module.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from liqtui.feeds.events import Bar, FeedState, Trade
from liqtui.feeds.settings import FeedSettings
from liqtui.sim.market import Market

MIN = 60_000
STEP = 300_000
DAY = 86_400_000
SCALE = 300.0  # the feed tests' market: simulated ms per wall ms (a 5-minute step a second)


async def until(cond, timeout=20.0, what="the condition", every=0.02):
    """Wait until ``cond()`` (a function or a coroutine function) is true; fail the test after
    ``timeout`` seconds, naming ``what`` it waited for."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not (await cond() if inspect.iscoroutinefunction(cond) else cond()):
        if loop.time() > end:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(every)


async def pilot_until(pilot, cond, timeout=20.0, step=0.05):
    """In a Textual pilot test: wait (the app running meanwhile) until ``cond()``; its
    last value after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await pilot.pause(step)
    return cond()


def header(app) -> str:
    """The app's header line, as shown."""
    return app.main.query_one("HeaderBar").plain


# ---------------------------------------------------------------------------- markets

NOW = 1_790_000_130_000          # a 2026 instant, 30 s into a minute; fixed so windows repeat
SYMS = ("BTCUSDT", "ETHUSDT")
CACHE: list[Path] = []           # the session's history cache (conftest's _sim_cache sets it)


def fixed_market(time_scale=1.0, manual=False) -> Market:
    """Two days of history (1,500 one-minute klines need more than one) at a fixed start; built
    once a session, later markets load it from the cache (~0.1 s). ``manual`` stops the clock
    at ``NOW`` (``set_now`` moves it), which makes limit windows exact."""
    m = Market(symbols=SYMS, seed=7, now_ms=NOW, history_days=2.0, time_scale=time_scale,
               cache_dir=CACHE[0] if CACHE else None)
    if manual:
        m.set_now(NOW)
    return m


class Scripted:
    """A real Market plus scripted live events: ``each_second(t)`` gives the events to add for
    each whole simulated second ``t`` the clock passes, merged with the market's in time order."""

    def __init__(self, market, each_second):
        self.market, self.each_second, self._last = market, each_second, market.now_ms()

    def __getattr__(self, name):
        return getattr(self.market, name)

    def advance(self):
        events = list(self.market.advance())
        now = self.market.now_ms()
        second = self._last - self._last % 1000 + 1000
        while second <= now:
            events += self.each_second(second)
            second += 1000
        self._last = now
        events.sort(key=lambda e: e[2])
        return events


def liquidating_at_the_mark(market) -> Scripted:
    """``market`` plus scripted liquidations, so a test never waits for a random market to
    produce some: at each simulated second, per symbol, a short wiped (BUY) just above the mark
    and a long wiped (SELL) just below it. What a venue's sim makes of each (held back, hence
    late; a COIN-M or inverse twin) is decided by a hash of it, so at 300 simulated seconds a
    wall second every kind comes within the first wall second."""
    def each_second(second):
        out = []
        for sym in market.symbols:
            mark = market.mark_price(sym)[0]
            out += [("liquidation", sym, second + 100, "BUY", 1.0, mark * 1.001, mark * 1.001),
                    ("liquidation", sym, second + 200, "SELL", 2.0, mark * 0.999, mark * 0.999)]
        return out

    return Scripted(market, each_second)


def closed_end(market) -> int:
    """A step boundary safely in the past (the clock runs on while a test asks)."""
    return (market.now_ms() // STEP - 2) * STEP


# ---------------------------------------------------------------------------- sockets


async def frames(ws, n=None, seconds=2.0, parse=True):
    """Data frames received within ``seconds`` (or the first ``n``), parsed as JSON unless
    ``parse`` is false; ends early when the socket closes."""
    out = []
    deadline = time.monotonic() + seconds
    while n is None or len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):
                break
            continue
        out.append(json.loads(msg.data) if parse else msg.data)
    return out


async def get(session, sim, path, **params):
    """(status, headers, body) of a GET on the simulator's REST side; the body is JSON when
    it parses, else text."""
    async with session.get(sim.rest_url + path, params=params) as r:
        try:
            body = await r.json(content_type=None)
        except ValueError:
            body = await r.text()
        return r.status, r.headers, body


def on_tick(px: str, tick: float) -> bool:
    """Whether the price ``px`` (as the venue wrote it) is a whole number of ticks."""
    return abs(float(px) / tick - round(float(px) / tick)) < 1e-6


def okx_protocol(sx):
    """The simulator's OKX side (its counters and switches)."""
    return sx.protocol("okx")


# ---------------------------------------------------------------------------- live clients

# timers short enough that reconnects, retries and closed steps happen within a test
FAST = dict(backoff_base_s=0.1, backoff_cap_s=0.5, rest_backoff_base_s=0.02,
            rest_backoff_cap_s=0.1, stale_timeout_s=5.0, step_settle_s=0.05, step_retry_s=0.3)


def fast(**kw) -> FeedSettings:
    return FeedSettings(**(FAST | kw))


class Feed:
    """A live client (``live_class``: BinanceLive, BybitLive, OkxLive) on the simulator ``sx``,
    running in a task, with everything it reported. ``rest`` false: no REST URL given."""

    def __init__(self, live_class, sx, symbols, *, settings: FeedSettings, rest=True, **kw):
        self.events, self.statuses, self.gaps, self.steps = [], [], [], []
        self.live = live_class(sx.ws_url, symbols, rest_url=sx.rest_url if rest else None,
                               settings=settings, on_event=self.events.append,
                               on_status=self.statuses.append, on_gap=self.gaps.append,
                               on_steps=self.steps.append, **kw)
        self.task = None

    async def __aenter__(self):
        self.task = asyncio.create_task(self.live.run())
        return self

    async def __aexit__(self, *exc):
        await self.live.stop()
        await asyncio.wait_for(self.task, 10)  # run() returns on stop(), never raises
        assert self.statuses[-1].state is FeedState.STOPPED

    @property
    def state(self):
        return self.live.state

    def states(self):
        return [s.state for s in self.statuses]

    def of(self, cls, symbol=None):
        return [e for e in self.events
                if isinstance(e, cls) and (symbol is None or e.symbol == symbol)]


def concat(parts):
    """Backfills (or closed steps) joined in order, column by column."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


async def retries_5xx_and_times_out(sim, rest_class, fast, ref, end, ask):
    """HTTP 5xx at 30 %: retried, and ETHUSDT's half day to ``end`` equals ``ref``; at 100 %:
    a clear error after the retries; an answer slower than the timeout: a clear error, each
    try counted. ``fast(**kw)`` makes the venue's settings; ``ask(rest)`` is a cheap request."""
    from liqtui.feeds.rest import RestError

    sim.faults.http_5xx_rate = 0.3
    async with rest_class(sim.rest_url, settings=fast(rest_retries=8)) as rest:
        bf = await rest.backfill("ETHUSDT", end - DAY // 2, end)
        assert rest.counters["http_5xx"] > 0 and rest.counters["retries"] > 0
    for k in ref:
        np.testing.assert_array_equal(bf[k], ref[k])
    sim.faults.http_5xx_rate = 1.0
    async with rest_class(sim.rest_url, settings=fast(rest_retries=2)) as rest:
        with pytest.raises(RestError, match=r"failed 3 times \(HTTP 5\d\d\)"):
            await ask(rest)
    sim.faults.update(http_5xx_rate=0.0, slow_ms=400)
    async with rest_class(sim.rest_url, settings=fast(rest_retries=1, rest_timeout_s=0.1)) as rest:
        with pytest.raises(RestError, match="no answer within 0.1 s"):
            await ask(rest)
        assert rest.counters["timeouts"] == 2


async def a_silent_socket_goes_stale_and_is_replaced(sim, feed):
    """With the data silent (pings and replies still flow), the feed says STALE after its 0.6 s
    stale timeout, replaces the socket (RECONNECTING), and is LIVE again once data returns."""
    async with feed(sim, ("BTCUSDT",), stale_timeout_s=0.6) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        sim.faults.silent = True
        await until(lambda: FeedState.STALE in f.states(), what="STALE")
        await until(lambda: f.states()[-1] is FeedState.RECONNECTING or
                    f.live.counters["stale"] >= 2, what="RECONNECTING after STALE")
        sim.faults.silent = False
        await until(lambda: f.states()[-1] is FeedState.LIVE, what="LIVE again")
        s = f.states()
        i = s.index(FeedState.STALE)
        assert FeedState.RECONNECTING in s[i:] and s[-1] is FeedState.LIVE
        assert "no data for 0.6 s" in f.statuses[i].reason


async def a_garbage_socket_goes_stale_and_is_replaced(sim, feed):
    """With every data frame malformed, the socket is not "alive" (only accepted data is): the
    feed says STALE after its 0.6 s stale timeout, replaces it, and is LIVE once data is good."""
    async with feed(sim, ("BTCUSDT",), stale_timeout_s=0.6) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        sim.faults.malformed_rate = 1.0
        await until(lambda: FeedState.STALE in f.states() and f.live.counters["reconnects"] >= 1,
                    what="STALE and replaced")
        assert f.live.counters["malformed"] > 0
        sim.faults.malformed_rate = 0.0
        await until(lambda: f.states()[-1] is FeedState.LIVE, what="LIVE again")


async def damaged_frames_are_counted_and_survived(sim, feed):
    """Malformed, truncated and extra-field frames are counted while good ones still flow,
    without a reconnect or a callback error; returns the BTCUSDT trades that got through."""
    async with feed(sim, ("BTCUSDT",)) as f:
        await until(lambda: f.state is FeedState.LIVE, what="LIVE")
        sim.faults.update(malformed_rate=0.2, truncated_rate=0.2, extra_fields=True)
        n0 = len(f.of(Trade))
        await until(lambda: f.live.counters["malformed"] >= 30 and len(f.of(Trade)) > n0 + 30,
                    what="damaged frames counted while good ones still flow")
        sim.faults.update(malformed_rate=0.0, truncated_rate=0.0, extra_fields=False)
        assert f.states() == [FeedState.CONNECTING, FeedState.LIVE]
        assert f.live.counters["reconnects"] == 0 and f.live.counters["callback_errors"] == 0
    return f.of(Trade)


async def steps_through_an_outage(sim, market, rest_class, feed, sym="BTCUSDT"):
    """The app's way: backfill, then closed steps over REST as they close, while for three
    steps connections are dropped and the ones that get through carry no data (the feed keeps
    reconnecting and replacing stale sockets meanwhile). ``feed(sim, symbols, **settings)``
    makes the venue's ``Feed``. Returns the backfill joined to the steps received (checked
    to have no gap and no duplicate), the feed, and its live closed 1-minute bars by time."""
    async with rest_class(sim.rest_url) as rest:
        initial = await rest.backfill(sym, lookback_ms=DAY // 2)
    async with feed(sim, (sym,), stale_timeout_s=0.5) as f:
        f.live.steps_from(sym, initial.end)
        await until(lambda: f.state is FeedState.LIVE and len(f.steps) >= 2, what="live steps")
        sim.faults.update(drop_every_s=0.3, silent=True)
        t_end = market.now_ms() + 3 * STEP
        await until(lambda: market.now_ms() >= t_end and f.live.counters["reconnects"] >= 2,
                    what="an outage of three steps")
        sim.faults.update(drop_every_s=None, silent=False)
        await until(lambda: f.gaps and f.states()[-1] is FeedState.LIVE, what="gap, LIVE")
        gap_end = f.gaps[-1].end_ms
        await until(lambda: f.steps and f.steps[-1].end > gap_end + STEP, what="steps past the gap")
        live_minutes = {b.time: b for b in f.of(Bar, sym) if b.closed}
    got = concat([initial, *f.steps])
    assert np.all(np.diff(got["time"]) == STEP), "the closed steps have a gap or a duplicate"
    return got, f, live_minutes


async def assert_equals_an_uninterrupted_run(sim, rest_class, got, live_minutes, sym="BTCUSDT"):
    """One uninterrupted backfill of ``got``'s span equals it, and so does the model's heatmap
    (returned); the live closed 1-minute bars (the provisional column's input) are what REST
    serves again for those minutes."""
    from liqtui.model import build_heatmap

    t = got["time"]
    async with rest_class(sim.rest_url) as rest:
        ref = await rest.backfill(sym, int(t[0]), int(t[-1]) + STEP)
        m1 = await rest.backfill(sym, min(live_minutes), max(live_minutes) + MIN, interval_ms=MIN)
    assert set(ref) == set(got)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    hm, hm_ref = build_heatmap(got), build_heatmap(ref)
    np.testing.assert_array_equal(hm.columns, hm_ref.columns)
    assert hm.levels(10) == hm_ref.levels(10)
    rows = {int(t): i for i, t in enumerate(m1["time"])}
    for t0, b in live_minutes.items():
        i = rows[t0]
        assert (b.open, b.high, b.low, b.close, b.volume) == (
            m1["open"][i], m1["high"][i], m1["low"][i], m1["close"][i], m1["volume"][i])
        assert math.isclose(b.quote_volume, m1["quote_volume"][i])
    return hm
