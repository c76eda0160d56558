"""The liquidation map panel: plotext's drawing in the heatmap palette's colours."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.color import ColorSystem
from rich.text import Text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synth import synthetic_bars  # noqa: E402

from liqtui.model import build_heatmap  # noqa: E402
from liqtui.ui.liqmap import plot, recolour  # noqa: E402
from liqtui.ui.palette import get_palette  # noqa: E402


@pytest.fixture(scope="module")
def lm():
    return build_heatmap(synthetic_bars(2016)).liquidation_map()


def drawn(lm, palette: str) -> Text:
    return recolour(Text.from_ansi(plot(lm, 40, 12)), get_palette(palette))


def colours(text: Text) -> set:
    return {s.style.color for s in text.spans if s.style.color is not None}


def test_16_colours_keep_red_green_and_a_grey_price_line(lm):
    """In 16 colours each colour is an exact standard-palette triplet that downgrades to the
    intended ANSI index: red longs (9), green shorts (10), the price line grey (7), not the
    magenta and bright white plotext's numbers became through Textual's theme."""
    t = drawn(lm, "16")
    got = {c.downgrade(ColorSystem.STANDARD).number for c in colours(t)}
    assert got == {9, 10, 7}, got
    line = [s for s in t.spans if "│" in t.plain[s.start:s.end]]
    assert line and all(s.style.color.downgrade(ColorSystem.STANDARD).number == 7 for s in line)


def test_the_price_line_is_one_column(lm):
    rows = drawn(lm, "16").plain.splitlines()
    cols = {r.index("│") for r in rows if "│" in r}
    assert len(cols) == 1 and sum("│" in r for r in rows) >= 8, rows


@pytest.mark.parametrize("name", ["truecolor", "256"])
def test_other_palettes_use_the_heatmap_marker_colours(lm, name):
    pal = get_palette(name)
    assert colours(drawn(lm, name)) == {pal.marker_styles["long"][0].color,
                                        pal.marker_styles["short"][0].color,
                                        pal.axis_style.color}


def test_mono_has_no_colour(lm):
    assert colours(drawn(lm, "mono")) == set()
