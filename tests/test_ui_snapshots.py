"""SVG snapshots of the real app (pytest-textual-snapshot) at 80×24 and 120×36.

The app runs ``--demo``'s path: the simulated exchange on loopback, the real clients pointed at
it. The market is seeded and its clock is manual: it stands at ``NOW`` during the backfill,
then moves once by ``LIVE_MS`` so the live feed delivers a fixed set of events, and stands
again. Nothing visible reads the wall clock (data age, time axis and feed-event times come from
the exchange's clock), so the screen is the same on every run and every machine.

Update the baselines (tests/__snapshots__/) after a deliberate change with
``pytest tests/test_ui_snapshots.py --snapshot-update`` and look at them.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("pytest_textual_snapshot")

from liqtui.feeds.events import FeedState  # noqa: E402
from liqtui.feeds.settings import FeedSettings  # noqa: E402
from liqtui.report import usd  # noqa: E402
from liqtui.sim.market import Market  # noqa: E402
from liqtui.ui.app import AppOptions, LiqApp  # noqa: E402

NOW = 1_763_645_850_000      # 2025-11-20 13:37:30 UTC
DAY = 86_400_000
LIVE_MS = 20_000             # the live feed's share: 20 s of trades, marks and liquidations
WATCH = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("snap-sim")


def demo_app(cache) -> tuple[LiqApp, Market]:
    # the history starts at the day boundary before NOW - 1 day: the seeded data the SVGs pin
    market = Market(WATCH, 7, now_ms=NOW, start_ms=(NOW - DAY) // DAY * DAY, cache_dir=cache)
    market.set_now(NOW)
    opts = AppOptions(demo=True, demo_market=market, watchlist=WATCH, lookback_ms=86_400_000,
                      range_name="12h", live_s=0.1,
                      feed_settings=FeedSettings(oi_poll_s=0.3))
    return LiqApp(opts), market


async def _until(pilot, cond, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}; header: "
                                 f"{pilot.app.main.query_one('HeaderBar').plain}")
        await pilot.pause(0.05)


def settled(market: Market, palette: str = "256"):
    """After the backfill, move the clock once and wait until the app shows exactly that.
    ``palette`` is explicit: the headless console's colour system is not the user's."""

    async def run(pilot) -> None:
        app = pilot.app
        await _until(pilot, lambda: app.feed is not None and app.feed.heatmap is not None
                     and any("lookback complete" in e.text for e in app.session.events),
                     "the whole lookback")
        app.set_palette(palette)
        end = NOW + LIVE_MS
        market.set_now(end)
        f = app.feed

        def live_shown() -> bool:
            oi = f.open_interest()
            lm = app.main.query_one("LiqMap")
            return (f.state is FeedState.LIVE and f.last_data_ms == end and oi is not None
                    and oi.time == end and app.view.price == f.price()
                    and app.view.live_column is not None
                    and (not lm.display or not lm._pending)
                    and "LIVE" in app.main.query_one("HeaderBar").plain)

        await _until(pilot, live_shown, "the live feed at the moved clock")
        # the held colour scale was taken whenever the last column roll came, with or without
        # the live column: take it now, as the user's rescale would, and wait for the legend
        app.view.rescale()
        legend = f"0…{usd(app.view.scale.full_usd)}"
        await _until(pilot, lambda: legend in app.main.query_one("HeaderBar").plain, legend)
        await pilot.pause(0.3)  # one more redraw tick: header and list settle on the same data

    return run


@pytest.mark.parametrize("size, palette", [((80, 24), "256"), ((120, 36), "256"),
                                           ((80, 24), "16")])
def test_main_view(snap_compare, cache, size, palette):
    app, market = demo_app(cache)
    assert snap_compare(app, terminal_size=size, run_before=settled(market, palette))


def test_inspect_cursor(snap_compare, cache):
    app, market = demo_app(cache)
    wait = settled(market, "truecolor")

    async def run(pilot):
        await wait(pilot)
        await pilot.press("left", "left", "left", "up", "up")
        await _until(pilot, lambda: pilot.app.main.query_one("#inspect").has_class("-on"),
                     "the inspect bar")

    assert snap_compare(app, terminal_size=(120, 36), run_before=run)


def test_help_screen(snap_compare, cache):
    app, market = demo_app(cache)
    wait = settled(market)

    async def run(pilot):
        await wait(pilot)
        await pilot.press("question_mark")
        await _until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen", "help")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run)
