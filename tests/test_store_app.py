"""The app with the store: it paints from what is stored at once, fetches only the gap, keeps
what it sees live; `liqtui replay` plays stored data through the same app (REPLAY, pause,
speed)."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

pytest.importorskip("textual")

from helpers import header, pilot_until  # noqa: E402

import liqtui.sim.market as sim_market  # noqa: E402
import liqtui.sim.server as sim_server  # noqa: E402
from liqtui.feeds import BinanceRest  # noqa: E402
from liqtui.feeds.events import Liquidation, MarkPrice  # noqa: E402
from liqtui.feeds.settings import FeedSettings  # noqa: E402
from liqtui.store import Store  # noqa: E402
from liqtui.ui.app import AppOptions, LiqApp  # noqa: E402
from liqtui.session import ReplaySpec  # noqa: E402

SIZE = (120, 40)
STEP = 300_000
HOUR = 3_600_000


until = partial(pilot_until, timeout=30.0)


def notes(app) -> list[str]:
    return [e.text for e in app.session.events]


@pytest.fixture(scope="module")
def market():
    return sim_market.Market(("BTCUSDT",), seed=4, history_days=1.2)


async def _stored_day(sx, path, upto_ms):
    """What an earlier session kept: 20 hours of closed steps up to ``upto_ms``."""
    async with BinanceRest(sx.rest_url) as rest:
        bf = await rest.backfill("BTCUSDT", upto_ms - 20 * HOUR, upto_ms)
    with Store(path) as st:
        st.add_steps("binance", "BTCUSDT", bf)
        st.set_tick_size("binance", "BTCUSDT", 0.1)
    return bf


async def test_the_app_paints_from_the_store_fetches_the_gap_and_keeps_live_data(
        tmp_path, market):
    path = tmp_path / "liqtui.db"
    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        now = market.now_ms()
        before = await _stored_day(sx, path, now // STEP * STEP - HOUR)
        store = Store(path)
        app = LiqApp(AppOptions(
            demo=False, rest_url=sx.rest_url, ws_url=sx.ws_url, store=store,
            symbol="BTCUSDT", watchlist=("BTCUSDT",), lookback_ms=24 * HOUR, range_name="12h",
            feed_settings=FeedSettings(oi_poll_s=0.5)))
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: any("from the store" in n for n in notes(app)))
            assert await until(pilot, lambda: "LIVE" in header(app)), header(app)
            text = notes(app)
            i = next(i for i, n in enumerate(text) if "from the store" in n)
            j = next(i for i, n in enumerate(text) if n.startswith("backfilled"))
            assert i < j  # painted from the store before the venue answered
            assert text[i].startswith(f"{len(before['time'])} steps from the store")
            gap = int(text[j].split()[1])
            assert 11 <= gap <= 13  # the last hour only, not the 12 h range
            f = app.feed
            # the lookback's older part the store lacks (24 h − 21 h) is fetched beside it
            assert await until(pilot, lambda: f.older is None)
            assert f.series.steps["time"][0] < before["time"][0]
            # what the app sees live goes into the store
            assert await until(pilot, lambda: len(store.marks("binance", "BTCUSDT")["time"]) > 0
                               and len(store.open_interest("binance", "BTCUSDT")["time"]) > 0)
        store.close()
    finally:
        await sx.stop()
    with Store(path, readonly=True) as st:
        steps = st.steps("binance", "BTCUSDT")
        # the gap and the older part were kept as well: 24 h of steps, no hole
        assert steps["time"][-1] == before["time"][-1] + gap * STEP
        assert len(steps["time"]) >= 287 and np.all(np.diff(steps["time"]) == STEP)


def _replay_store(path, bars):
    """Stored steps plus a mark a second and a few liquidations over the last two hours."""
    end = int(bars["time"][-1]) + STEP
    with Store(path) as st:
        st.add_steps("binance", "BTCUSDT", bars)
        close = np.repeat(bars["close"][-24:], 300)
        for k, t in enumerate(range(end - 2 * HOUR, end, 1000)):
            st.add_event(MarkPrice("binance", "BTCUSDT", t, float(close[k])))
        for t in range(end - 2 * HOUR, end, 600_000):
            st.add_event(Liquidation("binance", "BTCUSDT", t + 7000, "long",
                                     float(close[0]), 0.5, float(close[0]) * 0.5))
    return end


async def test_replay_plays_through_the_app_with_pause_and_speed(tmp_path, market):
    path = tmp_path / "liqtui.db"
    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        async with BinanceRest(sx.rest_url) as rest:
            bars = await rest.backfill("BTCUSDT", lookback_ms=24 * HOUR)
    finally:
        await sx.stop()
    end = _replay_store(path, bars)
    start = end - 2 * HOUR
    store = Store(path, readonly=True)
    app = LiqApp(AppOptions(
        demo=False, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9", store=store,
        symbol="BTCUSDT", watchlist=("BTCUSDT",), lookback_ms=12 * HOUR, range_name="12h",
        replay=ReplaySpec(start, end, 120.0)))
    async with app.run_test(size=SIZE) as pilot:
        assert await until(pilot, lambda: "REPLAY" in header(app)), header(app)
        assert "×120" in header(app)
        f = app.feed
        first_end = f.series.end
        assert first_end == start  # painted from the steps before the replay's start
        assert await until(pilot, lambda: f.series.end > first_end)  # steps close as replayed
        assert await until(pilot, lambda: len(f.liquidations) > 0)
        await pilot.press("p")
        held = app.session.clock()
        await pilot.pause(0.5)
        assert app.session.clock() == held and "PAUSED" in header(app)
        await pilot.press("p")
        await pilot.press("full_stop")
        assert await until(pilot, lambda: "×240" in header(app)), header(app)
        await pilot.press("comma")
        await pilot.press("comma")
        assert await until(pilot, lambda: "×60" in header(app)), header(app)
        assert app.session.clock() > held
    store.close()


@pytest.mark.parametrize("args, needle", [
    (["--from", "2026-11-30T10:00", "--to", "2026-11-30T09:00"], "must be after"),
    (["--from", "yesterday", "--to", "2026-11-30T09:00"], "'yesterday'"),
    (["--from", "2026-11-30T08:00", "--to", "2026-11-30T09:00"], "nothing stored"),
])
def test_replay_bad_input_exits_2(tmp_path, args, needle):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQTUI_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-m", "liqtui", "replay", "--symbol", "BTCUSDT", *args,
                        "--data-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
