"""The cumulative liquidation map, drawn with plotext: long USD liquidated if price falls to a
level (left of the price), short USD if it rises (right). Small, redrawn at most once a second.

plotext colours by ANSI number; those are replaced by the heatmap palette's own colours (long
and short markers, axis grey), so the map follows ``--colors`` and ``NO_COLOR`` like the rest:
in 16 colours an ANSI number would otherwise go through Textual's theme and come back as
another colour (red as magenta, the grey price line as bright white)."""

from __future__ import annotations

import time

import numpy as np
from rich.style import Style
from rich.text import Span, Text
from textual.widgets import Static

from .palette import Palette, get_palette

LONG, SHORT, LINE = 1, 2, 7   # the ANSI numbers plot() draws with, replaced by recolour()


class LiqMap(Static):
    DEFAULT_CSS = """
    LiqMap { height: 12; width: 1fr; }
    """
    MIN_INTERVAL = 1.0

    def __init__(self, **kw):
        super().__init__("", **kw)
        self._map = None
        self._window = 0.06
        self._palette = get_palette("truecolor")
        self._last = 0.0
        self._key = None
        self._pending = False

    def set_map(self, lm, window: float = 0.06, palette: Palette | None = None) -> None:
        self._map, self._window = lm, window
        self._palette = palette or self._palette
        self._pending = True
        self.draw()

    def on_resize(self) -> None:
        self._key = None
        self._pending = True
        self.draw(force=True)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._pending or (not force and now - self._last < self.MIN_INTERVAL):
            return
        w, h = self.size.width, self.size.height
        if w < 16 or h < 5 or not self.display:
            return
        self._last, self._pending = now, False
        lm = self._map
        if lm is None:
            self.update(Text("liquidation map: waiting for data", style="dim"), layout=False)
            return
        key = (id(lm), w, h, self._window, self._palette.name)
        if key == self._key:
            return
        self._key = key
        self.update(recolour(Text.from_ansi(plot(lm, w, h, self._window)), self._palette),
                    layout=False)


def plot(lm, width: int, height: int, window: float = 0.06) -> str:
    import plotext as plt

    p = np.asarray(lm.prices, dtype=float)
    ref = float(lm.reference_price)
    sel = (p >= ref * (1 - window)) & (p <= ref * (1 + window))
    if sel.sum() < 2:
        sel = np.ones_like(p, dtype=bool)
    x = p[sel]
    longs = np.where(x <= ref, np.asarray(lm.long_usd, dtype=float)[sel], 0.0)
    shorts = np.where(x >= ref, np.asarray(lm.short_usd, dtype=float)[sel], 0.0)
    top = max(longs.max(initial=0.0), shorts.max(initial=0.0), 1.0)
    div, unit = next(((d, u) for d, u in ((1e9, "B"), (1e6, "M"), (1e3, "K")) if top >= d),
                     (1.0, ""))
    plt.clear_figure()
    plt.plot_size(width, height)
    plt.theme("clear")
    plt.frame(False)
    plt.plot(x, longs / div, color=LONG, marker="braille")
    plt.plot(x, shorts / div, color=SHORT, marker="braille")
    plt.vertical_line(ref, color=LINE)
    plt.title(f"cumulative liq. USD{unit and ' (' + unit + ')'}: longs ↓ shorts ↑")
    lo, hi = float(x[0]), float(x[-1])
    plt.xticks([lo, ref, hi], [_short(lo), _short(ref), _short(hi)])
    plt.yticks([0, top / div], ["0", f"{top / div:.0f}" if top / div >= 10 else f"{top / div:.1f}"])
    return plt.build()


def recolour(text: Text, palette: Palette) -> Text:
    """plotext's ANSI colours → the palette's (none at all for mono)."""
    colours = {LONG: palette.marker_styles["long"][0].color,
               SHORT: palette.marker_styles["short"][0].color, LINE: palette.axis_style.color}
    spans = []
    for sp in text.spans:
        st = sp.style if isinstance(sp.style, Style) else Style.parse(str(sp.style))
        if st.color is not None and st.color.number in colours:
            st = st + Style(color=colours[st.color.number]) if colours[st.color.number] \
                else Style(bold=st.bold)
        spans.append(Span(sp.start, sp.end, st))
    text.spans = spans
    return text


def _short(p: float) -> str:
    if p >= 10_000:
        return f"{p / 1000:.1f}k"
    if p >= 100:
        return f"{p:.0f}"
    return f"{p:.3g}"
