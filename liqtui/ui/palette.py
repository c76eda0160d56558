"""Black → yellow palettes per colour system, with pre-built Rich style lookup tables.

* ``truecolor``: 48 smooth levels, black → deep purple → magenta/red → orange → bright yellow.
* ``256``: 19 levels, every entry **exactly** an xterm 6×6×6 cube colour (listed as xterm
  indices in :data:`XTERM_RAMP`), so neighbouring levels stay distinct after downgrade.
* ``16``: one pixel per cell, glyph density `` ░▒▓█`` in ANSI red, then yellow over red.
* ``mono`` (``NO_COLOR``): glyph density only.

Half-block palettes (truecolor, 256) hold one ``Style`` per (upper, lower) level pair:
``pair_styles[upper * levels + lower]`` is ``▀`` with fg = upper, bg = lower. Glyph palettes
(16, mono) hold one (glyph, Style) per level. Nothing creates a Style or Color per cell.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rich._palettes import STANDARD_PALETTE
from rich.color import Color
from rich.style import Style

HALF = "▀"
DENSITY = " ░▒▓█"
CUBE_LEVELS = (0, 95, 135, 175, 215, 255)

# (r, g, b) steps on the 6×6×6 cube: black, deep purple, magenta, red, orange, yellow
_CUBE_RAMP = [
    (0, 0, 0), (0, 0, 1), (1, 0, 1), (1, 0, 2), (2, 0, 2), (2, 0, 3), (3, 0, 3), (4, 0, 3),
    (4, 0, 2), (5, 0, 2), (5, 0, 1), (5, 0, 0), (5, 1, 0), (5, 2, 0), (5, 3, 0), (5, 4, 0),
    (5, 5, 0), (5, 5, 1), (5, 5, 2),
]
XTERM_RAMP = [16 + 36 * r + 6 * g + b for r, g, b in _CUBE_RAMP]
"""The 256-colour palette as xterm indices, level 0 (black, 16) … full (yellow, 228)."""

# truecolor anchors (position 0…1, rgb), interpolated to TRUE_LEVELS
_ANCHORS = [
    (0.00, (0, 0, 0)), (0.02, (18, 4, 38)), (0.20, (62, 12, 110)), (0.40, (150, 20, 140)),
    (0.58, (220, 40, 70)), (0.75, (250, 120, 20)), (0.90, (255, 205, 20)), (1.00, (255, 255, 90)),
]
TRUE_LEVELS = 48


def xterm_rgb(index: int) -> tuple[int, int, int]:
    """RGB of an xterm 256-colour index 16…255 (cube or grey ramp)."""
    if 16 <= index < 232:
        i = index - 16
        return CUBE_LEVELS[i // 36], CUBE_LEVELS[(i // 6) % 6], CUBE_LEVELS[i % 6]
    if 232 <= index < 256:
        v = 8 + 10 * (index - 232)
        return v, v, v
    raise ValueError(f"not an xterm cube/grey index: {index}")


def _truecolor_ramp(levels: int) -> list[tuple[int, int, int]]:
    pos = np.array([a[0] for a in _ANCHORS])
    rgb = np.array([a[1] for a in _ANCHORS], dtype=float)
    x = np.linspace(0, 1, levels)
    # level 1 must already be visible against black: start the ramp at the 2nd anchor
    x = np.where(x > 0, pos[1] + x * (1 - pos[1]), 0)
    out = np.stack([np.interp(x, pos, rgb[:, k]) for k in range(3)], axis=1)
    return [tuple(int(round(v)) for v in c) for c in out]


@dataclass
class Palette:
    name: str                 # truecolor | 256 | 16 | mono
    colors: list              # per level: rich Color (None for mono)
    half_blocks: bool         # True: two pixels per cell (▀); False: one pixel, glyph density
    glyphs: list = field(default_factory=list)      # glyph palettes: per level
    styles: list = field(default_factory=list)      # glyph palettes: per level Style
    pair_styles: list = field(default_factory=list)  # half blocks: per upper*L+lower Style
    cursor_style: Style = Style()
    marker_styles: dict = field(default_factory=dict)  # side -> per level Style
    axis_style: Style = Style()
    price_style: Style = Style()
    live_price_style: Style = Style()
    line_color: Color | None = None  # the current-price line across the grid

    @property
    def levels(self) -> int:
        return len(self.colors)

    @property
    def pixels_per_cell(self) -> int:
        return 2 if self.half_blocks else 1

    def quantize(self, scale, heat: np.ndarray) -> np.ndarray:
        """Palette level per pixel against the held ``scale`` (a ``ColorScale``); 0 = zero."""
        return scale.quantize(heat, self.levels).astype(np.intp)

    def cell_codes(self, q: np.ndarray) -> np.ndarray:
        """Pixel levels (rows, cols) → one style code per terminal cell (rows/ppc, cols)."""
        if not self.half_blocks:
            return q
        upper, lower = q[0::2], q[1::2]
        if lower.shape[0] < upper.shape[0]:  # odd pixel count: the last lower pixel is black
            lower = np.vstack([lower, np.zeros((1, q.shape[1]), dtype=q.dtype)])
        return upper * self.levels + lower

    def cell(self, code: int) -> tuple[str, Style]:
        if self.half_blocks:
            return HALF, self.pair_styles[code]
        return self.glyphs[code], self.styles[code]


def _markers(colors_bg: list) -> dict:
    sides = {"long": Color.parse("#ff3b3b"), "short": Color.parse("#3bff7a")}
    return {s: [Style(color=c, bgcolor=bg, bold=True) for bg in colors_bg]
            for s, c in sides.items()}


def _half_block_palette(name: str, colors: list[Color]) -> Palette:
    pair = [Style(color=u, bgcolor=lo) for u in colors for lo in colors]
    return Palette(
        name=name, colors=colors, half_blocks=True, pair_styles=pair,
        cursor_style=Style(color=Color.parse("#ffffff"), bgcolor=Color.parse("#00d7ff")),
        marker_styles=_markers(colors),
        axis_style=Style(color=Color.parse("#a8a8a8"), bgcolor=colors[0]),
        price_style=Style(color=Color.parse("#000000"), bgcolor=Color.parse("#ffffff"), bold=True),
        live_price_style=Style(color=Color.parse("#ffffff"), bgcolor=Color.parse("#ffffff")),
        line_color=Color.parse("#d0d0d0") if name == "truecolor" else Color.from_ansi(252),
    )


@lru_cache(maxsize=None)
def get_palette(name: str) -> Palette:
    """The palette for a colour system name: truecolor, 256, 16 (standard) or mono."""
    if name == "truecolor":
        return _half_block_palette(name, [Color.from_rgb(*c) for c in _truecolor_ramp(TRUE_LEVELS)])
    if name == "256":
        return _half_block_palette(name, [Color.from_ansi(i) for i in XTERM_RAMP])
    if name == "16":
        # ANSI colours given as the exact triplets of Rich's standard palette: Textual's
        # ANSI→truecolor filter leaves RGB alone and the downgrade maps them back to the same
        # ANSI index (named ANSI colours would go through the theme and come back as others)
        std = [Color.from_rgb(*STANDARD_PALETTE[i]) for i in range(16)]
        black, red, yellow = std[0], std[1], std[11]
        glyphs = [" "] + list(DENSITY[1:]) + list(DENSITY[1:])
        styles = [Style(bgcolor=black)] + [Style(color=red, bgcolor=black)] * 4 + [
            Style(color=yellow, bgcolor=red)] * 4
        colors = [black] + [red] * 4 + [yellow] * 4
        return Palette(
            name=name, colors=colors, half_blocks=False, glyphs=glyphs, styles=styles,
            cursor_style=Style(color=std[15], bgcolor=std[4]),
            marker_styles={"long": [Style(color=std[9], bgcolor=black, bold=True)] * 9,
                           "short": [Style(color=std[10], bgcolor=black, bold=True)] * 9},
            axis_style=Style(color=std[7], bgcolor=black),
            price_style=Style(color=black, bgcolor=std[15], bold=True),
            live_price_style=Style(color=std[15], bgcolor=black, bold=True),
            line_color=std[15],
        )
    if name == "mono":
        return Palette(
            name=name, colors=[None] * len(DENSITY), half_blocks=False, glyphs=list(DENSITY),
            styles=[Style()] * len(DENSITY), cursor_style=Style(reverse=True),
            marker_styles={"long": [Style(bold=True)] * 5, "short": [Style(bold=True)] * 5},
            axis_style=Style(), price_style=Style(reverse=True, bold=True),
            live_price_style=Style(reverse=True),
        )
    raise ValueError(f"unknown palette {name!r}: use truecolor, 256, 16 or mono")


def palette_for(color_system: str | None, no_color: bool | None = None) -> Palette:
    """The palette for a Rich console ``color_system`` (truecolor, 256, standard, windows, None)."""
    if no_color is None:
        no_color = bool(os.environ.get("NO_COLOR"))
    if no_color or color_system is None:
        return get_palette("mono")
    if color_system == "truecolor":
        return get_palette("truecolor")
    if color_system in ("256", "eight_bit"):
        return get_palette("256")
    return get_palette("16")


MARKER_GLYPH = {"long": "●", "short": "●"}
