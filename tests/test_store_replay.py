"""StoreReplay: stored data delivered through the live feed's callbacks, in time order, on a
replay clock that pauses and changes speed."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from liqtui.feeds.events import FeedState, Liquidation, MarkPrice, OpenInterest
from liqtui.feeds.series import SymbolSeries
from liqtui.model import ModelParams
from liqtui.replay import StoreReplay
from liqtui.store import Store
from strategies import random_bars

STEP = 300_000
T0 = (int(time.time() * 1000) - 2 * 86_400_000) // STEP * STEP


def _store(path):
    bars = random_bars(3, n_steps=300, long_gaps=0, short_gaps=0, bad_rows=0)
    bars["time"] = T0 - 200 * STEP + STEP * np.arange(300, dtype=np.int64)
    st = Store(path)
    st.add_steps("binance", "BTCUSDT", bars)
    rng = np.random.default_rng(1)
    for t in range(T0 - 3_600_000, T0 + 100 * STEP, 1000):
        st.add_event(MarkPrice("binance", "BTCUSDT", t, 100.0 + rng.normal()))
    for t in range(T0 - 3_600_000, T0 + 100 * STEP, 5000):
        st.add_event(OpenInterest("binance", "BTCUSDT", t, 1e4 + t % 7))
    liqs = [Liquidation("binance", "BTCUSDT", int(t), "long" if t % 2 else "short", 99.0, 1.0,
                        99.0) for t in rng.integers(T0 - 3_600_000, T0 + 100 * STEP, 50)]
    for lq in liqs:
        st.add_event(lq)
    st.flush()
    return st, bars, liqs


async def test_replay_delivers_everything_in_the_window_in_order(tmp_path):
    st, bars, liqs = _store(tmp_path / "s.db")
    start, end = T0, T0 + 60 * STEP
    got, steps, states = [], [], []
    series = SymbolSeries("BTCUSDT", ModelParams(), lookback_ms=10**12)
    series.extend(st.steps("binance", "BTCUSDT", None, start))  # what the app paints first
    rp = StoreReplay(st, "binance", ["BTCUSDT"], start, end, speed=1e7,
                     on_event=got.append, on_steps=lambda bf: (steps.append(bf),
                                                               series.extend(bf)),
                     on_status=lambda s: states.append(s.state))
    rp.steps_from("BTCUSDT", series.end)
    await asyncio.wait_for(rp.run(), 60)
    st.close()
    times = [ev.time for ev in got]
    assert times == sorted(times) and start <= times[0] and times[-1] < end
    want = sorted((lq.time, lq.side) for lq in liqs if start <= lq.time < end)
    assert [(ev.time, ev.side) for ev in got if isinstance(ev, Liquidation)] == want
    ois = [ev for ev in got if isinstance(ev, OpenInterest)]
    assert len(ois) == 60 * STEP // 5000
    marks = [ev for ev in got if isinstance(ev, MarkPrice)]
    assert len(marks) == 4 * 60 * 5  # four per stored minute bar
    # the closed steps closing by the end arrive at their close, once each, and extend the model
    delivered = np.concatenate([bf["time"] for bf in steps])
    np.testing.assert_array_equal(delivered, bars["time"][200:260])
    np.testing.assert_array_equal(series.steps["time"], bars["time"][:260])
    assert rp.bars.forming("BTCUSDT") is not None  # the minute bars feed the forming step
    assert states[0] is FeedState.BACKFILLING and states[-1] is FeedState.STOPPED


async def test_pause_holds_the_clock_and_speed_changes_its_rate(tmp_path):
    st, _, _ = _store(tmp_path / "s.db")
    rp = StoreReplay(st, "binance", "BTCUSDT", T0, T0 + 100 * STEP, speed=60)
    task = asyncio.create_task(rp.run())
    try:
        while rp.state is not FeedState.LIVE:
            await asyncio.sleep(0.01)
        assert rp.toggle_pause() is True
        held = rp.clock()
        await asyncio.sleep(0.3)
        assert rp.clock() == held
        rp.toggle_pause()
        rp.set_speed(6000)
        t_wall, t_replay = time.monotonic(), rp.clock()
        await asyncio.sleep(0.3)
        advanced = (rp.clock() - t_replay) / ((time.monotonic() - t_wall) * 1000)
        assert advanced > 600  # far faster than ×60 (exactly ×6000 but for scheduling)
        await rp.stop()
        await asyncio.wait_for(task, 10)
    finally:
        st.close()
    assert rp.state is FeedState.STOPPED
