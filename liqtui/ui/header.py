"""The header line: asset · venue · price and 24h change · OI · range · filters · feed state
with data age · legend with the USD of full yellow. Updated in place (no layout), and only when
its text changes."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from ..report import usd
from ..units import printable

# hex colours only: named ANSI colours go through Textual's theme and come back as other
# colours in 16-colour terminals (red as magenta)
STATE_STYLE = {
    "LIVE": "bold #5fff87", "DEMO": "bold #000000 on #ffd700",
    "REPLAY": "bold #000000 on #5fafff", "STALE": "bold #000000 on #ffaf00",
    "RECONNECTING": "bold #000000 on #ffaf00", "CONNECTING": "bold #ffaf00",
    "BACKFILLING": "bold #5fafff", "PREPARING": "bold #5fafff",
    "LIMITED": "bold #000000 on #ffaf00",
    "BANNED": "bold #ffffff on #d70000", "ERROR": "bold #ffffff on #d70000", "STOPPED": "dim",
    "PAUSED": "bold #000000 on #d7d7d7",
}
LEGEND = "▁▂▃▅▇"


@dataclass
class HeaderInfo:
    symbol: str = "…"
    venue: str = "Binance"
    price: float | None = None
    decimals: int = 2
    change: float | None = None      # fraction
    oi_usd: float | None = None
    range_label: str = "24h"
    tiers: str = "all"
    sides: str = "both"
    zoom: float = 1.0
    state: str = "CONNECTING"
    age_s: float | None = None
    demo: bool = False
    paused: bool = False
    legend_usd: float | None = None
    progress: tuple[int, int] = (0, 0)
    note: str = ""
    summed: bool = False             # venue names a sum of venues: kept longer


def _age(s: float) -> str:
    if s < 10:
        return f"{max(s, 0):.0f}s"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.0f}h"


def header_text(h: HeaderInfo, width: int) -> Text:
    """The header for ``width`` cells. When it does not fit, the parts take their short forms
    first, then the least important go: the default filters, the venue, open interest, …
    Kept longest: the asset, the feed state, the colour legend with the USD of full yellow
    (required at 80×24), the price."""
    parts: list[tuple[int, list, list]] = []   # (priority: lower goes first, full, short)

    def add(prio, pieces, short=None):
        parts.append((prio, pieces, pieces if short is None else short))

    add(11, [(h.symbol, "bold")])
    add(6.5 if h.summed else 2, [(h.venue, "")], [(h.venue.split()[0], "")])
    if h.price is not None:
        piece = [(f"{h.price:,.{h.decimals}f}", "bold")]
        if h.change is not None:
            up = h.change >= 0
            piece.append((f" {'▲' if up else '▼'}{abs(h.change) * 100:.1f}%",
                          "#5fff87" if up else "#ff5f5f"))
        add(8, piece)
    if h.oi_usd is not None:
        add(3, [("OI ", "dim"), (usd(h.oi_usd), "")])
    add(6, [(h.range_label + (f" ×{h.zoom:g}" if h.zoom != 1 else ""), "")])
    tiers = (h.tiers, "bold" if h.tiers != "all" else "")
    sides = [(h.sides, "bold")] if h.sides != "both" else []
    filtered = h.tiers != "all" or bool(sides)
    add(5 if filtered else 1,
        [("tiers: ", "dim"), tiers] + ([(" sides: ", "dim"), *sides] if sides else []),
        [tiers] + [(" ", ""), *sides] * bool(sides) if filtered else [])
    badge = (f" {h.state} ", STATE_STYLE.get(h.state, "bold"))
    tail = []
    if h.age_s is not None and h.state in ("LIVE", "STALE", "RECONNECTING"):
        tail.append((f" {_age(h.age_s)}", "" if h.age_s < 10 else "bold #ffaf00"))
    if h.progress[1]:
        tail.append((f" {h.progress[0] * 100 // max(h.progress[1], 1)}%", "#5fafff"))
    lead = [(" PAUSED ", STATE_STYLE["PAUSED"])] * h.paused + [(" DEMO ", STATE_STYLE["DEMO"])] * h.demo
    gap = [(" ", "")]
    add(10, [x for b in lead for x in (b, *gap)] + [badge] + tail, lead + [badge] + tail)
    if h.legend_usd is not None:
        add(9, [(LEGEND, "#ffd700"), (f" 0…{usd(h.legend_usd)}", "")],
            [(LEGEND[::2], "#ffd700"), (f" 0…{usd(h.legend_usd)}", "")])
    if h.note:
        add(7, [(h.note, "bold #ffaf00")])

    def build(keep, short):
        t = Text(no_wrap=True, overflow="ellipsis")
        for prio, full, brief in parts:
            pieces = brief if short else full
            if prio not in keep or not pieces:
                continue
            if t:
                t.append(" · ", "dim")
            for s, style in pieces:  # a symbol, a venue's reason: made printable
                t.append(printable(s, lines=False), style)
        return t

    keep = {p[0] for p in parts}
    for drop in sorted(keep):
        for short in (False, True):
            t = build(keep, short)
            if t.cell_len <= width or len(keep) <= 3:
                return t
        keep.discard(drop)
    return build(keep, True)


class HeaderBar(Static):
    DEFAULT_CSS = """
    HeaderBar { height: 1; width: 1fr; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, **kw):
        super().__init__("", **kw)
        self.info = HeaderInfo()
        self._shown: str | None = None

    def set_info(self, info: HeaderInfo) -> None:
        self.info = info
        self._paint()

    def on_resize(self) -> None:
        self._shown = None
        self._paint()

    def _paint(self) -> None:
        width = max(self.size.width - 2, 20) if self.size.width else 200
        t = header_text(self.info, width)
        key = t.markup
        if key != self._shown:
            self._shown = key
            self.update(t, layout=False)

    @property
    def plain(self) -> str:
        return header_text(self.info, max(self.size.width - 2, 20) if self.size.width else 200).plain
