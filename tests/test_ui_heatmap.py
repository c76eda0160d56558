"""The heatmap widget stack, hosted in a tiny Textual app (Pilot), asserted on strips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from rich.color import Color, ColorSystem
from textual.app import App

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from synth import synthetic_bars  # noqa: E402

from liqtui.model import build_heatmap  # noqa: E402
from liqtui.ui.heatmap import HeatmapView, build_strip, format_price  # noqa: E402
from liqtui.ui.palette import (  # noqa: E402
    HALF, XTERM_RAMP, get_palette, palette_for, xterm_rgb,
)

DAY = 86_400_000


@pytest.fixture(scope="module")
def hm():
    return build_heatmap(synthetic_bars(2016))  # 7 days of 5m bars


class Host(App):
    def __init__(self, hm, palette="truecolor", **kw):
        super().__init__()
        self.hm, self.palette_name, self.kw = hm, palette, kw
        self.inspected: list = []
        self.closed = 0

    def compose(self):
        yield HeatmapView(palette=self.palette_name, **self.kw)

    def on_mount(self):
        v = self.query_one(HeatmapView)
        v.show(self.hm, range_ms=DAY, rescale=True)
        v.focus()

    def on_heatmap_view_inspect(self, msg):
        self.inspected.append(msg)

    def on_heatmap_view_inspect_closed(self, msg):
        self.closed += 1


def segments(strip):
    return list(strip)


async def test_strips_merge_runs_and_zero_is_black(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        grid = v.grid
        cols, rows = v._geom
        assert cols == grid.size.width and rows == 2 * grid.size.height and cols > 40
        assert v.pixels.shape == (rows, cols) and v.pixels.any()
        pal = v.palette
        for y in range(grid.size.height):
            strip = grid.render_line(y)
            segs = segments(strip)
            assert strip.cell_length == cols
            assert all(set(s.text) == {HALF} for s in segs)
            # merged: neighbouring segments never share a style
            assert all(a.style != b.style for a, b in zip(segs, segs[1:]))
            # the segments are exactly the cells: fg = upper pixel, bg = lower pixel
            lv = v._levels
            x = 0
            for s in segs:
                for dx in range(len(s.text)):
                    up, lo = lv[2 * y, x + dx], lv[2 * y + 1, x + dx]
                    assert s.style is pal.pair_styles[up * pal.levels + lo]
                x += len(s.text)
        # the top row: zero pixels are black on black; merged runs are far fewer than cells
        top = segments(grid.render_line(0))
        assert len(top) < cols
        black = Color.from_rgb(0, 0, 0)
        zero_pixels = v.pixels[0] == 0
        x = 0
        for s in top:
            if zero_pixels[x] and v.pixels[1, x] == 0:
                assert s.style.color.get_truecolor() == black.get_truecolor()
                assert s.style.bgcolor.get_truecolor() == black.get_truecolor()
            x += len(s.text)
        assert (v._levels == 0).tolist() == (v.pixels == 0).tolist()


async def test_set_live_redraws_only_the_live_column(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        builds, updates = v.grid.builds, v.live.updates
        refreshed = []
        orig = v.grid.refresh
        v.grid.refresh = lambda *a, **k: (refreshed.append(a), orig(*a, **k))[1]
        col = hm.columns[-1] * 1.2
        lo, hi = v.window
        step = (hi - lo) / v._geom[1]                       # USD per pixel row
        p0 = lo + step * (v._geom[1] // 2 + 0.5)
        v.set_live(col, p0)                                  # the price line appears: 1 row
        await pilot.pause()
        assert len(refreshed) == 1
        refreshed.clear()
        v.set_live(col * 1.1, p0 + 0.3 * step)               # same pixel row: no grid row
        await pilot.pause()
        assert v.grid.builds == builds          # the grid's strip cache was not rebuilt
        assert refreshed == []                  # nor any grid row resent
        assert v.live.updates == updates + 2
        assert v.live.size.width == 1
        cells = [v.live.render_line(y) for y in range(v.live.size.height)]
        assert all(c.cell_length == 1 for c in cells)
        assert v.live_pixels is not None and v.live_pixels.sum() > 0
        assert v.price_axis._price is not None and "◀" not in v.price_axis._price[1]
        line = "".join(s.text for s in v.price_axis.render_line(v.price_axis._price[0]))
        assert line.startswith("◀")
        # the price line across the grid, dotted, at the price's terminal row
        y = v._row_of(p0 + 0.3 * step) // 2
        assert "".join(s.text for s in v.grid.render_line(y)).count("─") == (v._geom[0] + 2) // 3
        # the price moves 10 rows: exactly the old and the new line rows are resent
        v.set_live(col, p0 - 19.7 * step)
        await pilot.pause()
        assert sorted(r[0].y for r in refreshed) == sorted([y, y + 10])
        assert v.grid.builds == builds


async def test_the_colour_scale_is_held_until_rescale(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        legend = v.legend_usd
        assert legend > 0
        v.set_live(hm.columns[-1] * 50, hm.reference_price)   # a far bigger live maximum
        await pilot.pause()
        assert v.legend_usd == legend
        v.show(hm, range_ms=DAY)                                 # a redraw without rescale
        assert v.legend_usd == legend
        v.show(hm, range_ms=DAY, rescale=True)                   # a column roll
        assert v.legend_usd > legend
        v.set_live(None, hm.reference_price)
        assert v.rescale() == pytest.approx(legend)              # user action


async def test_cursor_keys_move_the_cursor_and_post_inspect(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        cols, rows = v._geom
        await pilot.press("up")
        await pilot.pause()
        assert v.cursor is not None
        c0, r0 = v.cursor
        assert c0 == cols - 1          # no live column yet: the newest history column
        await pilot.press("left", "left", "up", "up", "up")
        await pilot.pause()
        assert v.cursor == (c0 - 2, r0 - 3)
        msg = app.inspected[-1]
        assert (msg.col, msg.row) == v.cursor and not msg.live
        assert msg.price_lo < msg.price < msg.price_hi
        assert msg.usd == pytest.approx(v.pixels[r0 - 3, c0 - 2])
        assert msg.time == pytest.approx(hm.as_of - 2 * DAY / cols)
        # the cursor cell is drawn over the cached strip
        y = (r0 - 3) // 2
        cell = v.grid.render_line(y).crop(c0 - 2, c0 - 1)
        assert v.palette.cursor_style.bgcolor in (list(cell)[0].style.color,
                                                  list(cell)[0].style.bgcolor)
        # the newest column carries the tier mix; find a pixel with USD in it
        nz = np.flatnonzero(v.pixels[:, cols - 1])
        if nz.size:
            v.cursor = (cols - 1, int(nz[0]))
            m = v.inspect()
            assert m.tiers is not None and set(m.tiers) == set(hm.tier_labels)
            assert sum(a + b for a, b in m.tiers.values()) == pytest.approx(m.usd, rel=1e-6)
        # the live column: right of the grid, with the provisional state's tier mix
        v.set_live(hm.columns[-1], hm.reference_price, state=hm.state)
        v.cursor = (cols - 1, r0)
        await pilot.press("right", "right", "right")
        await pilot.pause()
        assert v.cursor[0] == cols and app.inspected[-1].live and app.inspected[-1].time is None
        await pilot.press("escape")
        await pilot.pause()
        assert v.cursor is None and app.closed == 1
        assert v.grid._cursor is None


async def test_resize_to_tiny_and_back(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        await pilot.press("up")
        for size in ((3, 2), (1, 1), (12, 4), (20, 6), (200, 60), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            v.set_live(hm.columns[-1], hm.reference_price)
            await pilot.press("down", "left")
            await pilot.pause()
            assert v.window is None or v.pixels.shape == (v._geom[1], v._geom[0])
        assert v.window is not None and v._geom[0] > 40
        assert v.legend_usd > 0


async def test_a_view_shown_before_it_has_a_size_gets_a_scale(hm):
    app = Host(hm)
    async with app.run_test(size=(5, 3)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        assert v.window is None               # too small: draws nothing
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert v.window is not None and v.legend_usd > 0


async def test_markers_are_drawn_over_the_grid_and_in_the_live_column(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        builds = v.grid.builds
        t = hm.as_of - DAY / 2
        v.set_markers([(t, hm.reference_price, "long", 1e6),
                       (hm.as_of + 60_000, hm.reference_price * 1.01, "short", 2e5)])
        await pilot.pause()
        assert v.grid.builds == builds
        rows = [y for y in range(v.grid.size.height)
                if "●" in "".join(s.text for s in v.grid.render_line(y))]
        assert len(rows) == 1
        assert any("●" in "".join(s.text for s in v.live.render_line(y))
                   for y in range(v.live.size.height))


async def test_glyph_palette_draws_one_pixel_per_cell(hm):
    app = Host(hm, palette="16")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        cols, rows = v._geom
        assert rows == v.grid.size.height
        text = "".join(s.text for y in range(rows) for s in v.grid.render_line(y))
        assert set(text) <= set(" ░▒▓█") and set(text) - {" "}


async def test_time_axis_labels_are_utc_times():
    hm = build_heatmap(synthetic_bars(600))
    app = Host(hm)
    async with app.run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        text = v.time_axis._text
        assert "UTC" in text and "╵" in text
        import re
        assert re.search(r"╵\d\d:\d\d", text)


def test_256_palette_entries_are_exactly_on_the_xterm_cube():
    pal = get_palette("256")
    assert [c.number for c in pal.colors] == XTERM_RAMP
    levels = (0, 95, 135, 175, 215, 255)
    for idx in XTERM_RAMP:
        assert 16 <= idx < 232
        r, g, b = xterm_rgb(idx)
        assert {r, g, b} <= set(levels)
    # neighbouring levels are distinct colours; black first, yellow-ish last
    assert len(set(XTERM_RAMP)) == len(XTERM_RAMP)
    assert xterm_rgb(XTERM_RAMP[0]) == (0, 0, 0)
    r, g, b = xterm_rgb(XTERM_RAMP[-1])
    assert r == g == 255 and b < 200
    # downgrading the truecolor triplets keeps every entry
    for c in pal.colors:
        tc = Color.from_rgb(*c.get_truecolor())
        assert tc.downgrade(ColorSystem.EIGHT_BIT).number == c.number


def test_palettes_follow_the_colour_system_and_no_color():
    assert palette_for("truecolor", False).name == "truecolor"
    assert palette_for("256", False).name == "256"
    assert palette_for("standard", False).name == "16"
    assert palette_for("windows", False).name == "16"
    assert palette_for("truecolor", True).name == "mono"
    assert palette_for(None, False).name == "mono"
    tc = get_palette("truecolor")
    assert tc.levels >= 32 and len(tc.pair_styles) == tc.levels ** 2
    # the ramp brightens monotonically from black
    lum = [sum(c.get_truecolor()) for c in tc.colors]
    assert lum[0] == 0 and lum[-1] == max(lum)


def test_only_a_non_empty_no_color_means_mono(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty value is ignored
    assert palette_for("truecolor").name == "truecolor"
    monkeypatch.setenv("NO_COLOR", "1")
    assert palette_for("truecolor").name == "mono"


def test_build_strip_merges_runs():
    pal = get_palette("256")
    codes = np.array([0, 0, 0, 5, 5, 0, 7, 7, 7, 7])
    segs = list(build_strip(codes, pal))
    assert [len(s.text) for s in segs] == [3, 2, 1, 4]
    assert [s.style for s in segs] == [pal.pair_styles[c] for c in (0, 5, 0, 7)]


async def test_auto_palette_follows_the_console_and_no_color(hm, monkeypatch):
    app = Host(hm, palette="auto")
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        assert v.palette.name == palette_for(app.console.color_system, False).name
        v.set_palette("256")
        assert v.palette.name == "256" and v.grid.render_line(0).cell_length == v._geom[0]
        with pytest.raises(ValueError):
            v.set_palette("neon")
    monkeypatch.setenv("NO_COLOR", "1")
    app = Host(hm, palette="auto")
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        assert v.palette.name == "mono" and v._geom[1] == v.grid.size.height


async def test_a_short_history_and_a_far_away_window_draw_without_error():
    short = build_heatmap({k: v[:12] for k, v in synthetic_bars(100).items()})
    app = Host(short)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        v.show(short, range_ms=30 * DAY, price_center=short.reference_price * 3, zoom=8)
        await pilot.press("up", "left", "down")
        await pilot.pause()
        assert v.cursor is not None and app.inspected
        v.set_live(short.columns[-1], short.reference_price)
        v.set_live(np.zeros(3), float("nan"))    # a column from another grid is ignored
        await pilot.pause()


def test_price_labels_fit_the_axis():
    assert format_price(95_123.4, 500) == "95,123"
    assert format_price(3_012.5, 0.2) == "3,012.5"
    assert format_price(0.15234, 0.00001) == "0.15234"
    assert format_price(0.000012345, 1e-9) == "0.0000123"
    assert format_price(123_456_789.0, 1e5) == "123.5M"
    for p in (1e-12, 0.5, 7.0, 1e5, 1e8, 1e11):
        assert len(format_price(p, p / 1000)) <= 9


async def test_a_redraw_resends_only_the_rows_that_changed(hm):
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        refreshed = []
        orig = v.grid.refresh
        v.grid.refresh = lambda *a, **k: (refreshed.append(a), orig(*a, **k))[1]
        v.show(hm, range_ms=DAY)                  # the same data again: nothing resent
        assert refreshed == [] and v.grid.rows_rebuilt == 0
        # one price band changes: only its terminal rows are rebuilt and resent
        lo, hi = v.window
        band = (hm.prices > hi - 3 * (hi - lo) / v._geom[1]) & (hm.prices < hi)
        cols = hm.columns.copy()
        cols[:, band] += cols.max()
        changed = type(hm)(**{**hm.__dict__, "columns": cols})
        v.show(changed, range_ms=DAY)
        assert 1 <= v.grid.rows_rebuilt <= 2 and len(refreshed) == v.grid.rows_rebuilt
        assert all(r[0].y <= 1 for r in refreshed)


async def test_switching_to_another_asset_centres_on_its_price(hm):
    eth = build_heatmap(synthetic_bars(600, price=3_000.0))
    app = Host(hm)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        v = app.query_one(HeatmapView)
        v.set_live(hm.columns[-1], hm.reference_price)
        v.show(eth, range_ms=DAY, rescale=True)
        await pilot.pause()
        lo, hi = v.window
        assert lo < eth.reference_price < hi and v.live_column is None and v.price is None
        assert v.pixels.any()
