"""The heatmap widget stack: history grid, live column, price axis, time axis, inspect cursor.

``HeatmapView`` composes::

    ┌ HeatGrid (1fr) ─────────────────┬ LiveColumn (1) ┬ PriceAxis ┐
    │ history, half blocks ▀          │ newest column  │ labels ◀  │
    └ TimeAxis (UTC labels) ──────────┴────────────────┴───────────┘

Rendering follows ``TUI.md``: Line API strips built from a pre-built style table with runs of
identical cells merged into one segment, cached per row and rebuilt only when the data, the
window, the palette or the size change. ``set_live`` redraws only the one-cell-wide live column
(and the price axis rows whose marker moved). The colour scale is *held*: it changes only on
``show(..., rescale=True)`` or ``rescale()``.
"""

from __future__ import annotations

import math
import os
import time as _time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.containers import Horizontal
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from liqtui.model import ColorScale

from .palette import HALF, MARKER_GLYPH, Palette, get_palette, palette_for
from .raster import bin_rows, column_index, pixel_to_point, point_to_pixel, price_window, raster

PRICE_AXIS_WIDTH = 10
MIN_COLS = 8   # grid cells below which nothing is drawn (the shell shows "terminal too small")
MIN_ROWS = 3

_BLANK = Style()
_RUNS = ["", *(HALF * n for n in range(1, 1025))]


def _run(glyph: str, n: int) -> str:
    if glyph == HALF and n < len(_RUNS):
        return _RUNS[n]
    return glyph * n


def build_strip(codes: np.ndarray, palette: Palette) -> Strip:
    """One terminal row of style codes → a Strip with runs of identical cells merged."""
    n = len(codes)
    if n == 0:
        return Strip([], 0)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = [0, *change.tolist()]
    ends = [*change.tolist(), n]
    cvals = codes[starts].tolist()
    segs = []
    if palette.half_blocks:
        table = palette.pair_styles
        for s, e, c in zip(starts, ends, cvals):
            segs.append(Segment(_RUNS[e - s] if e - s < len(_RUNS) else HALF * (e - s), table[c]))
    else:
        glyphs, styles = palette.glyphs, palette.styles
        for s, e, c in zip(starts, ends, cvals):
            segs.append(Segment(glyphs[c] * (e - s), styles[c]))
    return Strip(segs, n)


def _splice(strip: Strip, width: int, cells: dict[int, tuple[str, Style]]) -> Strip:
    """Replace single cells of ``strip`` (x → (glyph, style))."""
    parts, x0 = [], 0
    for x in sorted(cells):
        if not 0 <= x < width:
            continue
        if x > x0:
            parts.append(strip.crop(x0, x))
        g, st = cells[x]
        parts.append(Strip([Segment(g, st)], 1))
        x0 = x + 1
    if x0 < width:
        parts.append(strip.crop(x0, width))
    return Strip.join(parts)


@lru_cache(maxsize=512)
def _overlay_style(fg: Color | None, bg: Color | None, bold: bool = False) -> Style:
    return Style(color=fg, bgcolor=bg, bold=bold)


def _cursor_cell(palette: Palette, upper: int, lower: int, row: int) -> tuple[str, Style]:
    """The cell holding the cursor pixel: the cursor colour in its half, the other half kept."""
    if not palette.half_blocks or palette.colors[0] is None:
        g = palette.glyphs[upper] if not palette.half_blocks else HALF
        return (g if g != " " else "·"), palette.cursor_style
    cur = palette.cursor_style.bgcolor
    if row % 2 == 0:
        return HALF, _overlay_style(cur, palette.colors[lower])
    return HALF, _overlay_style(palette.colors[upper], cur)


def _marker_cell(palette: Palette, side: str, level: int) -> tuple[str, Style]:
    styles = palette.marker_styles.get(side) or palette.marker_styles["long"]
    return MARKER_GLYPH.get(side, "●"), styles[min(level, len(styles) - 1)]


def format_price(p: float, step: float, width: int = PRICE_AXIS_WIDTH - 1) -> str:
    """A price label with just enough decimals for ``step``, at most ``width`` characters."""
    if not math.isfinite(p):
        return "—"
    d = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 2
    for dd in range(min(d, 10), -1, -1):
        s = f"{p:,.{dd}f}"
        if len(s) <= width and (dd > 0 or abs(p) >= 1 or p == 0):
            return s
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(p) >= div:
            return f"{p / div:.{max(0, width - 5)}g}{unit}"[:width]
    return f"{p:.{max(1, width - 6)}e}"[:width]


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    e = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * 10**e >= raw:
            return m * 10**e
    return 10 ** (e + 1)


_TIME_STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 480, 720, 1440, 2880, 4320,
                   10080]


@dataclass
class Marker:
    time: float
    price: float
    side: str
    usd: float


def _as_marker(x) -> Marker:
    if isinstance(x, Marker):
        return x
    if isinstance(x, (tuple, list)):
        t, p, side, usd = x
        return Marker(float(t), float(p), str(side), float(usd))
    usd = getattr(x, "usd", None)
    if usd is None:
        usd = getattr(x, "notional", 0.0)
    return Marker(float(x.time), float(x.price), str(x.side), float(usd))


# ----------------------------------------------------------------------------- sub-widgets


class HeatGrid(Widget):
    """The history: one cached strip per terminal row, rebuilt only on a new raster."""

    DEFAULT_CSS = "HeatGrid { width: 1fr; height: 1fr; }"

    def __init__(self, view: "HeatmapView", **kw):
        super().__init__(**kw)
        self._view = view
        self._strips: list[Strip] = []
        self._overlay: dict[int, dict[int, tuple[str, Style]]] = {}  # markers: y → {x: cell}
        self._cursor: tuple[int, int, tuple[str, Style]] | None = None  # (x, y, cell)
        self._codes: np.ndarray | None = None
        self._palette: Palette | None = None
        self.builds = 0        # strip-cache updates (tests and benchmarks read it)
        self.rows_rebuilt = 0  # rows rebuilt by the last update that kept the frame

    def set_codes(self, codes: np.ndarray | None, palette: Palette) -> None:
        """New cell codes: rebuild (and resend) only the rows that changed."""
        old, self._codes = self._codes, codes
        same_frame = (old is not None and codes is not None and old.shape == codes.shape
                      and palette is self._palette and len(self._strips) == len(codes))
        self._palette = palette
        self.builds += 1
        if codes is None:
            self._strips = []
            self.refresh()
            return
        if not same_frame:
            self._strips = [build_strip(row, palette) for row in codes]
            self.refresh()
            return
        changed = np.flatnonzero((old != codes).any(axis=1))
        for y in changed.tolist():
            self._strips[y] = build_strip(codes[y], palette)
        self.rows_rebuilt = len(changed)
        self._refresh_rows(changed.tolist())

    def set_overlay(self, overlay: dict[int, dict[int, tuple[str, Style]]]) -> None:
        old = self._overlay
        rows = {y for y in set(old) | set(overlay) if old.get(y) != overlay.get(y)}
        self._overlay = overlay
        self._refresh_rows(rows)

    def set_cursor(self, cursor: tuple[int, int, tuple[str, Style]] | None) -> None:
        rows = {c[1] for c in (self._cursor, cursor) if c is not None}
        self._cursor = cursor
        self._refresh_rows(rows)

    def _refresh_rows(self, rows) -> None:
        w = self.size.width
        for y in rows:
            self.refresh(Region(0, y, w, 1))

    def on_resize(self, event) -> None:
        self._view._grid_resized()

    def render_line(self, y: int) -> Strip:
        w = self.size.width
        if not 0 <= y < len(self._strips):
            return Strip.blank(w, _BLANK)
        strip = self._strips[y]
        if strip.cell_length != w:
            strip = strip.crop_extend(0, w, _BLANK)
        cells = self._overlay.get(y)
        if self._cursor is not None and self._cursor[1] == y:
            cells = dict(cells or {})
            cells[self._cursor[0]] = self._cursor[2]
        if cells:
            strip = _splice(strip, w, cells)
        return strip


class LiveColumn(Widget):
    """The newest, provisional column: its own one-cell-wide widget (cheap to resend)."""

    DEFAULT_CSS = "LiveColumn { width: 1; height: 1fr; }"

    def __init__(self, **kw):
        super().__init__(**kw)
        self._cells: list[tuple[str, Style]] = []
        self.updates = 0

    def set_cells(self, cells: list[tuple[str, Style]]) -> None:
        """New cells; only the rows that changed are resent."""
        old, self._cells = self._cells, cells
        self.updates += 1
        if len(old) != len(cells):
            self.refresh()
            return
        w = self.size.width
        for y, (a, b) in enumerate(zip(old, cells)):
            if a != b:
                self.refresh(Region(0, y, w, 1))

    def render_line(self, y: int) -> Strip:
        if 0 <= y < len(self._cells) and self.size.width >= 1:
            g, st = self._cells[y]
            return Strip([Segment(g, st)], 1).crop_extend(0, self.size.width, _BLANK)
        return Strip.blank(self.size.width, _BLANK)


class PriceAxis(Widget):
    """Price labels on the right; the current price marked with ◀."""

    DEFAULT_CSS = f"PriceAxis {{ width: {PRICE_AXIS_WIDTH}; height: 1fr; }}"

    def __init__(self, **kw):
        super().__init__(**kw)
        self._labels: dict[int, str] = {}
        self._price: tuple[int, str] | None = None
        self._style = Style()
        self._price_style = Style()

    def set_labels(self, labels: dict[int, str], palette: Palette) -> None:
        self._labels = labels
        self._style, self._price_style = palette.axis_style, palette.price_style
        self.refresh()

    def set_price(self, price: tuple[int, str] | None) -> None:
        old = self._price
        if old == price:
            return
        self._price = price
        w = self.size.width
        for p in (old, price):
            if p is not None:
                self.refresh(Region(0, p[0], w, 1))

    def render_line(self, y: int) -> Strip:
        w = self.size.width
        if self._price is not None and self._price[0] == y:
            return Strip([Segment(("◀" + self._price[1])[:w].ljust(w), self._price_style)], w)
        text = self._labels.get(y)
        if text is None:
            return Strip.blank(w, self._style)
        return Strip([Segment(("┤" + text)[:w].ljust(w), self._style)], w)


class TimeAxis(Widget):
    """Time labels along the bottom (UTC, or local time); redrawn once per column period."""

    DEFAULT_CSS = "TimeAxis { height: 1; width: 1fr; }"

    def __init__(self, **kw):
        super().__init__(**kw)
        self._text = ""
        self._style = Style()

    def set_text(self, text: str, palette: Palette) -> None:
        if text == self._text and palette.axis_style == self._style:
            return
        self._text, self._style = text, palette.axis_style
        self.refresh()

    def on_resize(self, event) -> None:
        view = self.parent
        if isinstance(view, HeatmapView) and view.window is not None:
            view._update_time_axis()

    def render_line(self, y: int) -> Strip:
        w = self.size.width
        if y != 0:
            return Strip.blank(w, _BLANK)
        return Strip([Segment(self._text[:w].ljust(w), self._style)], w)


# ----------------------------------------------------------------------------- the view


class HeatmapView(Widget, can_focus=True):
    """History grid + one-cell live column + price axis + time axis + inspect cursor.

    API (see docs/ui.md): ``show``, ``set_live``, ``set_markers``, ``rescale``, ``scale``,
    ``legend_usd``, ``cursor``, ``local_time``, ``palette_name``; posts ``Inspect`` and
    ``InspectClosed``.
    """

    DEFAULT_CSS = """
    HeatmapView { layout: vertical; width: 1fr; height: 1fr; }
    HeatmapView > #hm-body { height: 1fr; width: 1fr; }
    """

    BINDINGS = [
        Binding("up", "cursor(0, -1)", "Cursor up", show=False, id="heatmap.cursor_up"),
        Binding("down", "cursor(0, 1)", "Cursor down", show=False, id="heatmap.cursor_down"),
        Binding("left", "cursor(-1, 0)", "Cursor left", show=False, id="heatmap.cursor_left"),
        Binding("right", "cursor(1, 0)", "Cursor right", show=False, id="heatmap.cursor_right"),
        Binding("escape", "leave_cursor", "Leave cursor", show=False, id="heatmap.leave_cursor"),
    ]

    class Inspect(Message):
        """The inspect cursor moved: what is under it.

        ``time`` is the end of the cell's period (ms; for the live column, ``None``),
        ``price`` the pixel row's centre, ``price_lo``/``price_hi`` its span, ``usd`` the USD
        there, ``tiers`` ``{tier label: (long USD, short USD)}`` for the newest column (None
        elsewhere), ``live`` whether it is the live column.
        """

        def __init__(self, view: "HeatmapView", time: float | None, price: float,
                     price_lo: float, price_hi: float, usd: float, tiers: dict | None,
                     col: int, row: int, live: bool):
            super().__init__()
            self.view, self.time, self.price = view, time, price
            self.price_lo, self.price_hi, self.usd, self.tiers = price_lo, price_hi, usd, tiers
            self.col, self.row, self.live = col, row, live

        @property
        def control(self) -> "HeatmapView":
            return self.view

    class InspectClosed(Message):
        """The inspect cursor was left (``esc``)."""

        def __init__(self, view: "HeatmapView"):
            super().__init__()
            self.view = view

        @property
        def control(self) -> "HeatmapView":
            return self.view

    def __init__(self, *, threshold: float = 0.85, curve: str = "gamma", palette: str = "auto",
                 local_time: bool = False, half_span: float = 0.06, price_line: bool = True,
                 **kw):
        super().__init__(**kw)
        self.scale = ColorScale(threshold, curve)
        self.palette_name = palette          # auto | truecolor | 256 | 16 | mono
        self.local_time = local_time
        self.half_span = half_span
        self.price_line = price_line  # a dotted line across the grid at the current price
        self.cursor: tuple[int, int] | None = None  # (col, pixel row); col == cols: live column
        self.hm = None
        self.range_ms = 86_400_000
        self.end_ms: float | None = None
        self.price_center: float | None = None
        self.zoom = 1.0
        self.window: tuple[float, float] | None = None  # (price_lo, price_hi) shown
        self.pixels: np.ndarray | None = None        # (rows, cols) USD of the history grid
        self.live_pixels: np.ndarray | None = None   # (rows,) USD of the live column
        self.live_column: np.ndarray | None = None
        self.live_state: np.ndarray | None = None
        self.price: float | None = None
        self.markers: list[Marker] = []
        self._levels: np.ndarray | None = None
        self._geom: tuple[int, int] = (0, 0)  # (cols, pixel rows) of the grid
        self._pending_rescale = False
        self.grid = HeatGrid(self)
        self.live = LiveColumn()
        self.price_axis = PriceAxis()
        self.time_axis = TimeAxis()

    def compose(self):
        with Horizontal(id="hm-body"):
            yield self.grid
            yield self.live
            yield self.price_axis
        yield self.time_axis

    # --------------------------------------------------------------- public API

    @property
    def legend_usd(self) -> float:
        """USD of full yellow (the header's legend maximum)."""
        return self.scale.full_usd

    @property
    def palette(self) -> Palette:
        name = self.palette_name
        if name in (None, "auto"):
            try:
                console = self.app.console
                no_color = getattr(self.app, "no_color", False) or bool(os.environ.get("NO_COLOR"))
                return palette_for(console.color_system, no_color)
            except Exception:  # not mounted yet
                return get_palette("truecolor")
        return get_palette(name)

    def show(self, hm, *, range_ms: float, price_center: float | None = None, zoom: float = 1.0,
             rescale: bool = False, end_ms: float | None = None) -> None:
        """Draw ``hm`` over the last ``range_ms`` (ending at ``end_ms``, default ``hm.as_of``);
        ``None`` clears the view (an asset whose data are not there yet).

        Redraws the grid and both axes (call on column rolls and user actions, not per tick).
        ``price_center`` defaults to the last live price, else ``hm.reference_price``.
        ``rescale=True`` (or an unset scale) takes a new colour scale from the visible pixels.
        """
        old = self.hm
        if hm is None or old is not None and (
                old.bin_offset != hm.bin_offset or len(old.prices) != len(hm.prices)):
            # nothing, or another grid (another asset): the live data belong to the old one
            self.live_column = self.live_state = self.price = None
            self.markers = []
        self.hm, self.range_ms, self.zoom = hm, float(range_ms), float(zoom)
        self.end_ms = end_ms
        if price_center is not None:
            self.price_center = float(price_center)
        elif self.price is not None and hm is not None and len(hm.prices) and (
                hm.prices[0] <= self.price <= hm.prices[-1]):
            self.price_center = self.price
        else:
            self.price_center = float(hm.reference_price) if hm is not None else None
        self._recompute(rescale=rescale or self.scale.scale <= 0)

    def set_live(self, column: np.ndarray | None, price: float | None,
                 state: np.ndarray | None = None) -> None:
        """The provisional newest column (B,) USD and the last price; ``state`` (tiers, 2, B)
        base, if given, feeds the tier mix of the inspect cursor. Redraws only the live column
        and the price-axis rows whose marker moved; the colour scale is not touched."""
        self.live_column = None if column is None else np.asarray(column)
        self.live_state = state
        self.price = None if price is None or not math.isfinite(price) else float(price)
        self._update_live()
        self._update_price_marker()
        if self.price_line:
            self._update_markers()  # resends a grid row only if the price line changed row
        if self.cursor is not None and self.cursor[0] == self._geom[0]:
            self._post_inspect()

    def set_markers(self, liquidations) -> None:
        """Realized liquidations: ``Liquidation`` events, or (time ms, price, side, usd) tuples."""
        markers = [_as_marker(x) for x in liquidations]
        if markers == self.markers:
            return
        self.markers = markers
        self._update_markers()
        self._update_live()

    def rescale(self) -> float:
        """Take a new held scale from what is visible now (history and live column)."""
        self._recompute(rescale=True)
        return self.legend_usd

    def redraw(self) -> None:
        """Recompute and redraw everything (no rescale)."""
        self._recompute(rescale=False)

    def set_palette(self, name: str) -> None:
        """``auto`` (follow the app's colour system and NO_COLOR), truecolor, 256, 16 or mono."""
        if name not in ("auto", "truecolor", "256", "16", "mono"):
            raise ValueError(f"unknown palette {name!r}: use auto, truecolor, 256, 16 or mono")
        self.palette_name = name
        self.redraw()

    def set_local_time(self, local: bool) -> None:
        """Time axis labels in local time instead of UTC."""
        self.local_time = bool(local)
        if self.window is not None:
            self._update_time_axis()

    # --------------------------------------------------------------- internals

    @property
    def _end(self) -> float:
        if self.end_ms is not None:
            return float(self.end_ms)
        return float(self.hm.as_of) if self.hm is not None else 0.0

    @property
    def _column_period(self) -> float:
        hm = self.hm
        if hm is None:
            return 0.0
        if len(hm.times) >= 2:
            return float(hm.times[-1] - hm.times[-2])
        return float(hm.interval_ms)

    def _grid_resized(self) -> None:
        self._recompute(rescale=False)

    def _too_small(self) -> bool:
        w, h = self.grid.size
        return w < MIN_COLS or h < MIN_ROWS or self.hm is None or len(self.hm.prices) == 0

    def _recompute(self, rescale: bool) -> None:
        rescale = rescale or self._pending_rescale or self.scale.scale <= 0
        if not self.is_mounted:
            self._pending_rescale = rescale
            return
        pal = self.palette
        if self._too_small():
            self._pending_rescale = rescale
            self._geom = (0, 0)
            self.pixels = self._levels = self.window = None
            self.grid.set_codes(None, pal)
            self.live.set_cells([])
            self.price_axis.set_labels({}, pal)
            self.price_axis.set_price(None)
            self.time_axis.set_text("", pal)
            return
        hm = self.hm
        cols, rows = self.grid.size.width, self.grid.size.height * pal.pixels_per_cell
        self._geom = (cols, rows)
        center = self.price_center or float(hm.reference_price)
        lo, hi = price_window(center, rows=rows, bin_width=hm.bin_width, zoom=self.zoom,
                              half_span=self.half_span)
        self.window = (lo, hi)
        self.pixels = raster(hm, end_ms=self._end, range_ms=self.range_ms, cols=cols, rows=rows,
                             price_lo=lo, price_hi=hi)
        self.live_pixels = self._live_pixels()
        if rescale:
            vis = self.pixels if self.live_pixels is None else np.concatenate(
                [self.pixels.ravel(), self.live_pixels])
            self.scale.rescale(vis)
            self._pending_rescale = False
        self._levels = pal.quantize(self.scale, self.pixels)
        self.grid.set_codes(pal.cell_codes(self._levels), pal)
        self._update_markers()
        self._update_live()
        self._update_price_axis()
        self._update_price_marker()
        self._update_time_axis()
        if self.cursor is not None:
            c, r = self.cursor
            self.cursor = (min(c, cols), min(r, rows - 1))
            self._draw_cursor()

    def _live_pixels(self) -> np.ndarray | None:
        if self.live_column is None or self.window is None or self.hm is None:
            return None
        col = self.live_column
        if col.shape[-1] != len(self.hm.prices):
            return None
        return bin_rows(col, self.hm.prices, self._geom[1], *self.window)

    def _live_levels(self) -> np.ndarray:
        rows = self._geom[1]
        if self.live_pixels is None:
            return np.zeros(rows, dtype=np.intp)
        return self.palette.quantize(self.scale, self.live_pixels)

    def _update_live(self) -> None:
        if self.window is None:
            self.live.set_cells([])
            return
        pal = self.palette
        self.live_pixels = self._live_pixels()
        lv = self._live_levels()
        codes = pal.cell_codes(lv[:, None])[:, 0]
        cells = [pal.cell(int(c)) for c in codes]
        cols, rows = self._geom
        ppc = pal.pixels_per_cell
        # the current price as a white pixel, realized liquidations in the live period
        if self.price is not None:
            r = self._row_of(self.price)
            if 0 <= r < rows:
                cells[r // ppc] = self._pixel_cell(pal, lv, r, pal.live_price_style)
        if self.markers:
            t = np.fromiter((m.time for m in self.markers), float, len(self.markers))
            for i in np.flatnonzero(t > self._end).tolist():
                m = self.markers[i]
                r = self._row_of(m.price)
                if 0 <= r < rows:
                    cells[r // ppc] = _marker_cell(pal, m.side, int(lv[r]))
        if self.cursor is not None and self.cursor[0] == cols:
            r = self.cursor[1]
            cells[r // ppc] = self._cursor_cell(pal, lv, r)
        self.live.set_cells(cells)

    def _pixel_cell(self, pal: Palette, lv: np.ndarray, r: int, style: Style):
        if not pal.half_blocks or pal.colors[0] is None:
            return "━", style
        up, low = self._pair(lv, r)
        fg = style.color
        if r % 2 == 0:
            return HALF, _overlay_style(fg, pal.colors[low])
        return HALF, _overlay_style(pal.colors[up], fg)

    def _pair(self, lv: np.ndarray, r: int) -> tuple[int, int]:
        top = r - r % 2
        up = int(lv[top])
        low = int(lv[top + 1]) if top + 1 < len(lv) else 0
        return up, low

    def _cursor_cell(self, pal: Palette, lv: np.ndarray, r: int):
        if pal.half_blocks:
            up, low = self._pair(lv, r)
            return _cursor_cell(pal, up, low, r)
        return _cursor_cell(pal, int(lv[r]), 0, r)

    def _row_of(self, price: float) -> int:
        lo, hi = self.window
        return int(math.floor((hi - price) / ((hi - lo) / self._geom[1])))

    def _update_markers(self) -> None:
        """Overlay cells on the cached grid strips: realized liquidations and the price line.

        Only rows whose overlay changed are resent."""
        if self.window is None or self._levels is None:
            self.grid.set_overlay({})
            return
        pal = self.palette
        cols, rows = self._geom
        ppc = pal.pixels_per_cell
        overlay: dict[int, dict[int, tuple[str, Style]]] = {}
        if self.price_line and self.price is not None:
            r = self._row_of(self.price)
            if 0 <= r < rows:
                y = r // ppc
                fg = pal.line_color
                xs = range(cols - 1, -1, -3)
                lv = self._levels[y * ppc] if pal.half_blocks else np.zeros(cols, dtype=np.intp)
                overlay[y] = {x: ("─", _overlay_style(fg, pal.colors[int(lv[x])])) for x in xs}
        if self.markers:
            t = np.array([m.time for m in self.markers])
            p = np.array([m.price for m in self.markers])
            c, r = point_to_pixel(t, p, end_ms=self._end, range_ms=self.range_ms, cols=cols,
                                  rows=rows, price_lo=self.window[0], price_hi=self.window[1])
            order = np.argsort([m.usd for m in self.markers])  # the biggest drawn last
            for i in order:
                ci, ri = int(c[i]), int(r[i])
                if 0 <= ci < cols and 0 <= ri < rows:
                    lvl = int(self._levels[ri, ci])
                    overlay.setdefault(ri // ppc, {})[ci] = _marker_cell(
                        pal, self.markers[i].side, lvl)
        self.grid.set_overlay(overlay)

    def _update_price_axis(self) -> None:
        pal = self.palette
        lo, hi = self.window
        h = self.grid.size.height
        per_cell = (hi - lo) / h
        step = _nice_step(per_cell * 3)
        labels: dict[int, str] = {}
        k = math.ceil(lo / step)
        while k * step < hi:
            v = k * step
            y = int((hi - v) // per_cell)
            if 0 <= y < h and not any(abs(y - yy) < 2 for yy in labels):
                labels[y] = format_price(v, step)
            k += 1
        self.price_axis.set_labels(labels, pal)

    def _update_price_marker(self) -> None:
        if self.price is None or self.window is None:
            self.price_axis.set_price(None)
            return
        lo, hi = self.window
        h = self.grid.size.height
        y = int((hi - self.price) // ((hi - lo) / h))
        if not 0 <= y < h:
            self.price_axis.set_price(None)
            return
        self.price_axis.set_price((y, format_price(self.price, self.hm.bin_width / 10)))

    def _update_time_axis(self) -> None:
        cols = self._geom[0]
        total = self.time_axis.size.width or cols
        per_col = self.range_ms / cols
        # a label every ≥ 12 cells, on a round time
        minutes = next((m for m in _TIME_STEPS_MIN if m * 60_000 >= per_col * 12),
                       _TIME_STEPS_MIN[-1])
        step = minutes * 60_000
        start = self._end - self.range_ms
        tz_off = 0
        if self.local_time:
            tz_off = _time.localtime(self._end / 1000).tm_gmtoff * 1000
        buf = [" "] * total
        k = math.ceil((start + tz_off) / step)
        last_end = -1
        while True:
            t = k * step - tz_off
            if t > self._end:
                break
            x = int(math.ceil((t - start) / per_col)) - 1  # the cell whose period holds t
            tm = (_time.localtime if self.local_time else _time.gmtime)(t / 1000)
            label = (f"{tm.tm_mon:02d}-{tm.tm_mday:02d}" if tm.tm_hour == 0 and tm.tm_min == 0
                     and minutes >= 60 else f"{tm.tm_hour:02d}:{tm.tm_min:02d}")
            text = "╵" + label
            if x >= 0 and x > last_end and x + len(text) <= cols:
                buf[x:x + len(text)] = text
                last_end = x + len(text)
            k += 1
        zone = "local" if self.local_time else "UTC"
        if total - cols >= len(zone) + 1:
            buf[total - len(zone):] = zone
        self.time_axis.set_text("".join(buf), self.palette)

    # --------------------------------------------------------------- the inspect cursor

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "leave_cursor":
            return self.cursor is not None
        return True

    def action_cursor(self, dx: int, dy: int) -> None:
        cols, rows = self._geom
        if cols == 0 or rows == 0:
            return
        if self.cursor is None:
            r = self._row_of(self.price if self.price is not None else self.price_center)
            self.cursor = (cols if self.live_column is not None else cols - 1,
                           min(max(r, 0), rows - 1))
        else:
            c, r = self.cursor
            self.cursor = (min(max(c + dx, 0), cols), min(max(r + dy, 0), rows - 1))
        self._draw_cursor()
        self._post_inspect()

    def action_leave_cursor(self) -> None:
        if self.cursor is None:
            return
        self.cursor = None
        self._draw_cursor()
        self.post_message(self.InspectClosed(self))

    def _draw_cursor(self) -> None:
        cols, rows = self._geom
        pal = self.palette
        if self.cursor is None or self.cursor[0] >= cols or self._levels is None:
            self.grid.set_cursor(None)
        else:
            c, r = self.cursor
            self.grid.set_cursor((c, r // pal.pixels_per_cell,
                                  self._cursor_cell(pal, self._levels[:, c], r)))
        self._update_live()

    def inspect(self) -> Inspect | None:
        """What is under the cursor now (the message ``Inspect`` carries the same)."""
        if self.cursor is None or self.window is None or self.pixels is None:
            return None
        cols, rows = self._geom
        c, r = self.cursor
        lo_w, hi_w = self.window
        live = c >= cols
        t, p, plo, phi = pixel_to_point(min(c, cols - 1), r, end_ms=self._end,
                                        range_ms=self.range_ms, cols=cols, rows=rows,
                                        price_lo=lo_w, price_hi=hi_w)
        hm = self.hm
        tiers = None
        if live:
            usd = float(self.live_pixels[r]) if self.live_pixels is not None else 0.0
            t = None
            if self.live_state is not None:
                tiers = self._tier_mix(self.live_state, plo, phi)
        else:
            usd = float(self.pixels[r, c])
            idx = column_index(hm.times, self._end, self.range_ms, cols)[c]
            if len(hm.times) and idx == len(hm.times) - 1 and hm.state is not None:
                tiers = self._tier_mix(hm.state, plo, phi)
        return self.Inspect(self, None if t is None else int(round(t)), p, plo, phi, usd, tiers,
                            c, r, live)

    def _tier_mix(self, state: np.ndarray, plo: float, phi: float) -> dict:
        hm = self.hm
        a, b = np.searchsorted(hm.prices, [plo, phi], side="left")
        prm = hm.params
        usd = state[:, :, a:b] * hm.prices[a:b]
        usd = usd * (prm.tier_mask[:, None, None] & prm.side_mask[None, :, None])
        per = usd.sum(axis=2)
        return {lab: (float(per[i, 0]), float(per[i, 1])) for i, lab in enumerate(hm.tier_labels)}

    def _post_inspect(self) -> None:
        msg = self.inspect()
        if msg is not None:
            self.post_message(msg)

    @property
    def grid_size(self) -> Size:
        return self.grid.size
