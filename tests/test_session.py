"""The session layer, headless, against the simulated exchange over real sockets: rapid asset
switching keeps the viewed asset live, and front ends learn what happens from typed events."""

from __future__ import annotations

import asyncio

import pytest

from helpers import fixed_market, until
from liqtui.feeds.events import FeedState
from liqtui.model import ModelParams
from liqtui.session import Session
from liqtui.session.events import (Backfilled, HeatmapRebuilt, MarketData, Note, StateChanged,
                                   StepsClosed, TradeData)

DAY = 86_400_000


def session(sx, venues=("binance",), view="binance", **kw) -> Session:
    urls = {v: (sx.rest_url, sx.ws_url) for v in venues}
    return Session(urls, view=view, params=ModelParams(), lookback_ms=DAY, range_ms=DAY // 2,
                   clock=sx.market.now_ms, **kw)


def live(s: Session, sym: str) -> bool:
    f = s.feed(sym)
    return f is not None and f.running and f.state is FeedState.LIVE


@pytest.mark.parametrize("pause", [0, 1, 2], ids=["no-pause", "one-tick", "two-ticks"])
async def test_rapid_switching_leaves_the_viewed_asset_live(exchange, pause):
    """``1`` then ``]`` 17 times without pause: switches arrive while the previous switch's
    start and the stop of an asset not viewed recently are in flight. The viewed asset ends
    live (its stop, if one was in flight, finishes first, then it starts again); at most
    ``keep_live`` assets run."""
    sx = await exchange(fixed_market())
    s = session(sx, keep_live=1)
    syms = ["BTCUSDT", "ETHUSDT"]
    try:
        for i in range(18):
            s.switch(syms[i % 2])
            for _ in range(pause):
                await asyncio.sleep(0)
        viewed = syms[17 % 2]
        await until(lambda: live(s, viewed), 30, f"{viewed} live after rapid switching")
        other = s.venues["binance"].feeds[syms[16 % 2]]
        await until(lambda: other.task.done(), 10, "the other asset stopped")
        assert s.feed(viewed).heatmap is not None
        # and back once more, with the other's stop long finished: it resumes
        s.switch(syms[16 % 2])
        await until(lambda: live(s, syms[16 % 2]), 30, "the previous asset live again")
    finally:
        await s.close()


async def test_a_switch_back_during_the_stop_restarts_the_asset(exchange):
    """The old defect: a switch back to an asset whose cancellation is still in flight found
    its task "running", started nothing, and the cancellation then left it STOPPED."""
    sx = await exchange(fixed_market())
    s = session(sx, keep_live=1)
    try:
        s.switch("BTCUSDT")
        await until(lambda: live(s, "BTCUSDT"), 30, "BTCUSDT live")
        s.switch("ETHUSDT")                  # BTCUSDT's stop is now in flight…
        btc = s.venues["binance"].feeds["BTCUSDT"]
        assert btc.stopping and not btc.task.done()
        s.switch("BTCUSDT")                  # …and the trader is already back
        await until(lambda: live(s, "BTCUSDT"), 30, "BTCUSDT live again")
        assert not btc.stopping
        await asyncio.sleep(0.5)             # nothing left over stops it afterwards
        assert live(s, "BTCUSDT")
    finally:
        await s.close()


async def test_front_ends_get_typed_events(exchange):
    """A subscriber learns states, the backfill, the rebuilt model, live data and notes; one
    that raises does not stop the others, and a closed subscription gets nothing more."""
    sx = await exchange(fixed_market())
    s = session(sx)
    got: list = []
    s.subscribe(got.append)
    trades = []
    s.subscribe(trades.append, TradeData)
    s.subscribe(lambda ev: 1 / 0, StateChanged)        # a broken front end
    states: list = []
    sub = s.subscribe(states.append, StateChanged)
    try:
        s.switch("BTCUSDT")
        await until(lambda: any(isinstance(e, MarketData) for e in got) and trades
                    and any(e.state is FeedState.LIVE for e in states), 30, "live data")
        kinds = {type(e) for e in got}
        assert {StateChanged, Backfilled, HeatmapRebuilt, Note, TradeData} <= kinds
        assert trades and all(isinstance(e, TradeData) for e in trades)
        assert all(isinstance(e, StateChanged) for e in states)
        assert [e.state for e in states][:1] == [FeedState.BACKFILLING]
        bf = next(e for e in got if isinstance(e, Backfilled))
        assert (bf.symbol, bf.venue, bf.source) == ("BTCUSDT", "binance", "rest")
        assert bf.steps > 0 and bf.end > bf.start
        assert s.bus.errors >= 1                          # the broken one, counted
        sub.close()
        n = len(states)
        s.switch("ETHUSDT")
        await until(lambda: any(isinstance(e, Backfilled) and e.symbol == "ETHUSDT"
                                for e in got), 30, "ETHUSDT backfilled")
        assert len(states) == n
    finally:
        await s.close()


async def test_closed_steps_reach_subscribers_with_the_venue(exchange):
    """Each venue of the sum publishes its closed steps under its own name; a fast market
    closes a 5-minute step every second of wall time."""
    sx = await exchange(fixed_market(time_scale=300.0))
    s = session(sx, venues=("binance", "bybit"), view="all")
    closed: list[StepsClosed] = []
    s.subscribe(closed.append, StepsClosed)
    try:
        s.switch("BTCUSDT")
        await until(lambda: {e.venue for e in closed} == {"binance", "bybit"}, 60,
                    "closed steps from both venues")
        assert all(e.symbol == "BTCUSDT" and len(e.steps["time"]) for e in closed)
    finally:
        await s.close()


def test_the_bus_knows_who_listens_and_a_closed_subscription_gets_nothing():
    from liqtui.session.bus import Bus
    from liqtui.session.events import StateChanged, TradeData

    bus, got = Bus(), []
    assert not bus.wanted(TradeData)
    sub = bus.subscribe(got.append, StateChanged)
    assert bus.wanted(StateChanged) and not bus.wanted(TradeData)
    every = bus.subscribe(got.append)
    assert bus.wanted(TradeData)
    every.close()
    every.close()  # idempotent
    assert not bus.wanted(TradeData)
    ev = StateChanged(1, "BTCUSDT", "binance", FeedState.LIVE)
    bus.publish(ev)
    sub.close()
    bus.publish(ev)
    assert got == [ev]


async def test_the_provisional_column_is_published_while_somebody_listens(exchange):
    """About once a second, the viewed asset's live column on the model's price grid."""
    from liqtui.session.events import ProvisionalColumn

    sx = await exchange(fixed_market())
    s = session(sx)
    cols: list[ProvisionalColumn] = []
    sub = s.subscribe(cols.append, ProvisionalColumn)
    try:
        s.switch("BTCUSDT")
        await until(lambda: len(cols) >= 2, 30, "two provisional columns")
        c = cols[-1]
        assert (c.symbol, c.venue) == ("BTCUSDT", "binance")
        assert len(c.column) == len(c.prices) == len(s.feed("BTCUSDT").heatmap.prices)
        assert c.column.sum() > 0
        sub.close()
        n = len(cols)
        await asyncio.sleep(2.5)
        assert len(cols) == n  # nobody listens: nothing is made
    finally:
        await s.close()
