"""Modal screens: help (built from the live bindings), the asset picker, the feed events."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.fuzzy import Matcher
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ..session import VENUES
from ..units import and_list, printable
from .keys import KEYS



# the venue parts come from the registry (liqtui.feeds.venues)
_CYCLE = " → ".join(v.label for v in VENUES.values())
_NO_TAKER = and_list([v.label for v in VENUES.values() if not v.taker_in_candles])
_SAMPLED = and_list([v.label for v in VENUES.values() if not v.liquidations_complete])
_COMPLETE = and_list([v.label for v in VENUES.values() if v.liquidations_complete])
HOW = (
    "[b]How this is estimated[/b] (LQ-1; nobody publishes where leveraged positions sit). "
    "Every 5-minute step, the change in open interest plus what the step liquidated is the net "
    "of positions opened and closed. New positions are split into longs and shorts by the "
    "taker-buy share, entered at the bar's VWAP and spread over leverage tiers (5x 10 %, "
    "10x 25 %, 25x 30 %, 50x 20 %, 100x 15 %). Each tier's liquidation price is Binance's "
    "isolated-margin formula; a level is removed once price trades through it. Cross margin "
    "is unknowable from public data: leverage is treated as effective leverage with the "
    "isolated formula, as every such product does. Voluntary closes and stops are invisible, "
    "so real liquidations are smaller than the bands. Realized-liquidation markers: "
    f"{_SAMPLED}'s are a sample (at most one per symbol per second), {_COMPLETE} publish "
    "every one.\n"
    f"Venues: v cycles all → {_CYCLE} (the header names what is included). All "
    "sums each venue's own model on Binance's price grid, every venue's prices mapped by the "
    "ratio of the venues' prices at the same time, so basis does not smear the bands; V "
    "stacks the levels by venue. A venue that fails is left out of the sum with a note in "
    f"the header and the feed events. {_NO_TAKER} candles carry no taker-buy volume: their "
    "backfill uses a 0.5 taker share (new positions split evenly); live steps use their "
    "trades.\n"
    "Colour: black = nothing, yellow = the legend's USD (θ × the largest visible cell; t/T "
    "move θ). The last column is the live, provisional step. These are estimates, not known "
    "positions."
)

GROUPS = (("app", "General"), ("asset", "Assets"), ("view", "View"), ("filter", "Filters"),
          ("cursor", "Inspect"))


def key_label(keys: str) -> str:
    return " ".join(format_key(k) for k in keys.split(",") if k)


class HelpScreen(ModalScreen):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 104; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1; }
    HelpScreen #help-tables { height: auto; }
    HelpScreen.-narrow #help-tables { layout: vertical; }
    HelpScreen .help-col { width: 1fr; height: auto; }
    HelpScreen #help-how { margin-top: 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help_close")]

    def on_resize(self, event) -> None:
        # one table under the other when two side by side would cut the ids
        self.set_class(event.size.width < 100, "-narrow")

    def _table(self, groups) -> Table:
        keymap = getattr(self.app, "_keymap", {})
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold #ffd700", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(style="dim", no_wrap=True)
        digits = [k for k in KEYS if k.id.startswith("asset_")]
        for group, title in GROUPS:
            if group not in groups:
                continue
            # in the wide column: the key column is too narrow for it
            table.add_row("", Text(title, style="bold underline"), "")
            for k in KEYS:
                if k.group != group or (k in digits and k is not digits[0]):
                    continue
                if k is digits[0]:
                    label = f"{key_label(keymap.get(digits[0].id, digits[0].keys))}…" \
                            f"{key_label(keymap.get(digits[-1].id, digits[-1].keys))}"
                    table.add_row(label, "Watchlist asset N", "asset_1…9")
                    continue
                table.add_row(key_label(keymap.get(k.id, k.keys)), k.description, k.id)
        return table

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("liqtui: keys (the id column names them in [keys] of the config "
                              "file, e.g. next_asset = \"n\")", style="bold"))
            with Horizontal(id="help-tables"):
                yield Static(self._table(("app", "asset", "view")), classes="help-col")
                yield Static(self._table(("filter", "cursor")), classes="help-col")
            yield Static(HOW, id="help-how")
            yield Static(Text("esc closes", style="dim"))


def _shown(symbol: str) -> Text:
    """A venue's symbol as the picker shows it: printable, and never read as markup."""
    return Text(printable(symbol, lines=False))


class AssetPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    AssetPicker { align: center top; }
    AssetPicker > Vertical { width: 40; height: auto; max-height: 80%; margin-top: 2;
        border: round $accent; background: $surface; }
    AssetPicker OptionList { height: auto; max-height: 16; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="picker_cancel")]

    def __init__(self, symbols: list[str], watchlist: list[str]):
        super().__init__()
        self.symbols = list(dict.fromkeys([*watchlist, *symbols]))

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="asset, e.g. eth", id="picker-input")
            yield OptionList(*[Option(_shown(s), id=s) for s in self.symbols[:200]],
                             id="picker-list")

    def on_input_changed(self, event: Input.Changed) -> None:
        q = event.value.strip()
        ol = self.query_one(OptionList)
        ol.clear_options()
        if not q:
            ol.add_options([Option(_shown(s), id=s) for s in self.symbols[:200]])
        else:
            m = Matcher(q)
            scored = sorted(((m.match(s), s) for s in self.symbols), key=lambda x: -x[0])
            ol.add_options([Option(m.highlight(printable(s, lines=False)), id=s)
                            for sc, s in scored[:50] if sc > 0])
        if ol.option_count:
            ol.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        ol = self.query_one(OptionList)
        if ol.option_count and ol.highlighted is not None:
            self.dismiss(ol.get_option_at_index(ol.highlighted).id)
        elif event.value.strip():
            self.dismiss(event.value.strip().upper())

    def on_key(self, event) -> None:
        if event.key in ("down", "up"):
            ol = self.query_one(OptionList)
            if ol.option_count:
                cur = ol.highlighted or 0
                ol.highlighted = max(0, min(ol.option_count - 1, cur + (1 if event.key == "down" else -1)))
            event.stop()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class FeedEventsScreen(ModalScreen):
    DEFAULT_CSS = """
    FeedEventsScreen { align: center middle; }
    FeedEventsScreen > VerticalScroll { width: 100; max-width: 100%; height: 80%;
        border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,e", "dismiss", "Close", id="events_close")]

    def __init__(self, session):
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        # the widgets are kept, not queried: `e` then esc at once dismisses the screen before
        # it mounts, and a query then found nothing and took the app down (NoMatches)
        self._body = Static(id="events-body")
        with VerticalScroll() as scroll:
            scroll.border_title = "feed events (newest last) · esc closes"
            yield self._body

    def on_mount(self) -> None:
        self._fill()
        self.set_interval(1.0, self._fill)

    def _fill(self) -> None:
        lines = Text()
        for ev in list(self.session.events)[-150:]:
            lines.append(time.strftime("%H:%M:%S ", time.gmtime(ev.time / 1000)), "dim")
            lines.append(f"{printable(ev.symbol, lines=False):<9} ", "bold")
            if ev.venue:
                lines.append(f"{printable(ev.venue, lines=False):<8} ", "#5fafff")
            lines.append(printable(ev.text, lines=False) + "\n")  # a venue's words
        if not lines.plain:
            lines.append("no feed events yet", "dim")
        self._body.update(lines)
