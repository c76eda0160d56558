"""``--demo``: the first asset's market up front, the others generated in the background
(``Market.prepare``/``add``), a switch to one not built yet shows progress, not an error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from functools import partial

import pytest

pytest.importorskip("textual")

from helpers import pilot_until  # noqa: E402

from liqtui.feeds.settings import FeedSettings  # noqa: E402
from liqtui.sim.market import Market  # noqa: E402
from liqtui.ui.app import AppOptions, LiqApp  # noqa: E402

NOW = 1_763_645_850_000
MIN = 60_000


async def test_a_symbol_added_later_is_the_symbol_built_up_front():
    """prepare() in a worker thread while the market serves, then add(): the same history as
    a market that held the symbol from the start (and the progress is reported)."""
    whole = Market(("BTCUSDT", "ETHUSDT"), 3, now_ms=NOW, history_days=0.3)
    whole.set_now(NOW + 5 * MIN)
    later = Market(("BTCUSDT",), 3, now_ms=NOW, history_days=0.3)
    assert list(later.symbols) == ["BTCUSDT"]
    seen = []
    job = asyncio.to_thread(later.prepare, ["ETHUSDT", "BTCUSDT"],
                            lambda s, done, total: seen.append((s, done, total)))
    built = await job
    later.add(built)
    later.set_now(NOW + 5 * MIN)
    assert list(later.symbols) == ["BTCUSDT", "ETHUSDT"] and len(built) == 1
    assert later.klines("ETHUSDT", 5 * MIN, limit=100) == whole.klines("ETHUSDT", 5 * MIN,
                                                                        limit=100)
    assert later.open_interest("ETHUSDT") == whole.open_interest("ETHUSDT")
    assert seen[0][:2] == ("ETHUSDT", 0) and seen[-1][1] == seen[-1][2] > 0
    with pytest.raises(ValueError, match="unknown symbol 'NOPEUSDT'"):
        later.prepare(["NOPEUSDT"])


def test_the_first_symbol_starts_building_before_numpy_is_imported():
    """The CLI's path: the child generates while the parent imports numpy, Textual, aiohttp."""
    code = ("import sys, asyncio, liqtui.cli\n"
            "from liqtui.sim.child import start_first\n"
            "start, build = start_first('BTCUSDT', 3, 0.05, None)\n"
            "assert 'numpy' not in sys.modules, 'numpy imported before the child started'\n"
            "eng, hit, secs = asyncio.run(build.result())\n"
            "print(start, eng.k0 * 60000, eng.spec.symbol, hit)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    start, k0, symbol, hit = out.stdout.split()
    assert start == k0 and symbol == "BTCUSDT" and hit == "False"


async def test_a_failed_build_is_an_answer_not_a_crash():
    from liqtui.sim.child import Build
    from liqtui.sim.symbols import CATALOGUE

    got = await Build((CATALOGUE["BTCUSDT"], 3, "no-such-regime", NOW - 60 * MIN, NOW,
                       None)).result()
    assert isinstance(got, KeyError) and "no-such-regime" in str(got)


until = partial(pilot_until, timeout=30.0, step=0.02)


async def test_switching_to_a_symbol_still_being_built_shows_progress(tmp_path):
    opts = AppOptions(demo=True, demo_history_days=1.0, demo_time_scale=30.0,
                      demo_cache_dir=tmp_path, watchlist=("BTCUSDT", "ETHUSDT"),
                      lookback_ms=86_400_000, range_name="12h",
                      feed_settings=FeedSettings(backoff_base_s=0.2, backoff_cap_s=0.5))
    app = LiqApp(opts)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.feed is not None)
        assert "ETHUSDT" not in app.session.demo.market.symbols  # not before the first paint
        assert app.session.symbols == ["BTCUSDT", "ETHUSDT"]  # the picker has both
        await pilot.press("right_square_bracket")
        assert app.symbol == "ETHUSDT"
        seen: set = set()

        def shown():
            h = app.main.query_one("HeaderBar").plain
            lv = app.main.query_one("LevelsList").text
            if "PREPARING" in h:
                seen.add("header")
            if "simulating ETHUSDT's history" in lv:
                seen.add("levels")
            if app.feed.progress[0] > 0:
                seen.add("progress")
            assert "ERROR" not in h and "unknown" not in lv, (h, lv)
            return app.feed.heatmap is not None

        assert await until(pilot, shown)
        assert seen >= {"header", "levels"}, seen
        assert "ETHUSDT" in app.session.demo.market.symbols
        assert await until(pilot, lambda: app.view.hm is app.feed.heatmap)
        # the rest of the watchlist was built too; back to the first is instant
        await pilot.press("left_square_bracket")
        assert await until(pilot, lambda: app.view.hm is app.feed.heatmap
                           and app.symbol == "BTCUSDT")


async def test_a_switch_never_shows_the_previous_assets_map(tmp_path):
    opts = AppOptions(demo=True, demo_history_days=1.0, demo_time_scale=30.0,
                      demo_cache_dir=tmp_path, watchlist=("BTCUSDT", "SOLUSDT"),
                      lookback_ms=86_400_000, range_name="12h")
    app = LiqApp(opts)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: app.view.hm is not None)
        btc = app.view.hm
        await pilot.press("right_square_bracket")
        assert app.symbol == "SOLUSDT"
        # SOLUSDT has no data yet: an empty view and no legend, not BTCUSDT's under its name
        assert app.view.hm is None or app.view.hm is app.feed.heatmap
        assert app.view.hm is not btc
        assert await until(pilot, lambda: app.view.hm is not None and app.view.hm is not btc)
        events = " ".join(f"{e.symbol} {e.text}" for e in app.session.events)
        assert "SOLUSDT simulated market ready in" in events
