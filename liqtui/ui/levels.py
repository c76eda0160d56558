"""The live levels list: shorts above the price, longs below, a price line between them.
Columns: side, price, USD, distance from the price, cumulative USD from the price out (Σ).
Stacked by venue (the venue sum), each level has a second row: its USD share per venue.

Line API: each row is a cached ``Strip``; an update refreshes only rows whose text changed
(Textual resends whatever is marked dirty, so an unchanged list costs nothing)."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from ..report import usd
from ..units import printable

LONG = Style(color="#ff5f5f")
SHORT = Style(color="#5fff87")
HEAD = Style(color="#a8a8a8", bold=True)
PRICE = Style(color="#000000", bgcolor="#d7d7d7", bold=True)
DIM = Style(color="#808080")
BLANK = Style()  # not None: NO_COLOR's monochrome filter reads a style from every segment


def _usd(x: float) -> str:
    return usd(x).replace("$", "")


def _short(name: str, names) -> str:
    """The shortest prefix of ``name`` no other of ``names`` starts with (Binance, Bybit:
    "Bi", "By"; OKX: "O")."""
    others = [n for n in names if n != name]
    for k in range(1, len(name)):
        if not any(o.startswith(name[:k]) for o in others):
            return name[:k]
    return name


def _shares(by: dict, total: float, w: int) -> str:
    """"  └ Binance 55% Bybit 30% OKX 15%", short names when narrow ("Bi55% By30% O15%")."""
    parts = [(k, 100 * v / total if total > 0 else 0.0) for k, v in by.items()]
    text = "  └ " + " ".join(f"{k} {p:.0f}%" for k, p in parts)
    return text if len(text) <= w else \
        "  └ " + " ".join(f"{_short(k, by)}{p:.0f}%" for k, p in parts)


class LevelsList(Widget):
    DEFAULT_CSS = """
    LevelsList { height: 1fr; width: 1fr; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.rows: list[tuple[str, Style]] = []
        self._strips: dict[int, Strip] = {}
        self.levels = []
        self.price: float | None = None
        self.decimals = 2
        self.message = "waiting for data…"
        self.by_venue: list[dict] | None = None  # per level: venue label → USD

    # -------------------------------------------------------------- data

    def set_levels(self, levels, price: float | None, decimals: int, message: str = "",
                   by_venue: list[dict] | None = None) -> None:
        self.levels, self.price, self.decimals = list(levels), price, decimals
        self.message = printable(message, lines=False)  # often a venue's error
        self.by_venue = None if by_venue is None else list(by_venue)
        self._relayout()

    def set_price(self, price: float | None) -> None:
        """The live price on the divider row (only that row is resent)."""
        if price != self.price:
            self.price = price
            self._relayout()

    def on_resize(self) -> None:
        self._strips.clear()
        self._relayout(force=True)

    def _pw(self) -> int:
        return max([len(f"{x.price:,.{self.decimals}f}") for x in self.levels] + [5])

    def _fmt_row(self, lv, w: int) -> str:
        pw = self._pw()
        wide = w >= pw + 29
        price = f"{lv.price:,.{self.decimals}f}"
        side = ("long" if lv.side == "long" else "short") if wide else lv.side[0].upper()
        cols = [f"{side:<5}" if wide else side, price.rjust(pw), f"{_usd(lv.usd):>7}",
                f"{lv.distance_pct:+5.1f}%"]
        if wide:
            cols.append(f"{_usd(lv.cumulative_usd):>7}")
        return " ".join(cols)

    def _relayout(self, force: bool = False) -> None:
        w = self.size.width or 40
        h = self.size.height or 10
        rows: list[tuple[str, Style]] = []
        pw = self._pw()
        wide = w >= pw + 29
        head = (f"{'side':<5} {'price':>{pw}} {'USD':>7} {'Δ%':>6} {'Σ':>7}" if wide
                else f"  {'price':>{pw}} {'USD':>7} {'Δ%':>6}")
        rows.append((head, HEAD))
        if not self.levels:
            rows.append((self.message or "no levels", DIM))
        else:
            split = {id(lv): b for lv, b in zip(self.levels, self.by_venue or [])}
            per = 2 if split else 1  # rows per level
            room = max((h - 2) // per, 2)
            shorts = sorted((x for x in self.levels if x.side == "short"), key=lambda x: x.price,
                            reverse=True)
            longs = sorted((x for x in self.levels if x.side == "long"), key=lambda x: -x.price)
            # the strongest first when there is no room for all
            ns = min(len(shorts), max(room // 2, room - len(longs)))
            nl = min(len(longs), room - ns)
            keep_s = sorted(sorted(shorts, key=lambda x: -x.usd)[:ns], key=lambda x: -x.price)
            keep_l = sorted(sorted(longs, key=lambda x: -x.usd)[:nl], key=lambda x: -x.price)
            for x in keep_s:
                rows.append((self._fmt_row(x, w), SHORT))
                if split:
                    rows.append((_shares(split[id(x)], x.usd, w), DIM))
            if self.price is not None:
                label = f" {self.price:,.{self.decimals}f} "
                rows.append((label.center(min(w, 44), "─"), PRICE))
            for x in keep_l:
                rows.append((self._fmt_row(x, w), LONG))
                if split:
                    rows.append((_shares(split[id(x)], x.usd, w), DIM))
        changed = [y for y in range(max(len(rows), len(self.rows)))
                   if force or y >= len(rows) or y >= len(self.rows) or rows[y] != self.rows[y]]
        self.rows = rows
        for y in changed:
            self._strips.pop(y, None)
            if self.size.width:
                self.refresh(Region(0, y, self.size.width, 1))

    @property
    def text(self) -> str:
        return "\n".join(r for r, _ in self.rows)

    # -------------------------------------------------------------- render

    def render_line(self, y: int) -> Strip:
        w = self.size.width
        s = self._strips.get(y)
        if s is not None and s.cell_length == w:
            return s
        if y < len(self.rows):
            text, style = self.rows[y]
            s = Strip([Segment(text[:w].ljust(w), style)], w)
        else:
            s = Strip.blank(w, BLANK)
        self._strips[y] = s
        return s
