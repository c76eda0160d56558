"""The app shell: header, heatmap, levels list, liquidation map, footer; keys, assets, filters.

``LiqApp(options)`` is a front end of a ``liqtui.session.Session`` (the feeds of one or more
venues; the view is one venue or their sum) and polls it at its own redraw rate: the heatmap when the model changed (closed steps, filters, range, zoom), the live
column at most once a second, the header and the list only when their text changed.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import App, ComposeResult
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..model import ModelParams
from ..model.venues import VenueHeatmap
from ..report import price_decimals
from ..session import ALL, VENUES, WAITING, FeedSettings, Session, VenueSum
from ..session.events import StateChanged, VenueLeftOut
from ..units import UI_RANGES, printable, usd, utc
from . import keys as keyspec
from .header import HeaderBar, HeaderInfo
from .heatmap import HeatmapView
from .help import AssetPicker, FeedEventsScreen, HelpScreen
from .levels import LevelsList
from .liqmap import LiqMap

log = logging.getLogger("liqtui.ui")

RANGE_NAMES = list(UI_RANGES)
ZOOMS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
TIERS_CYCLE = ("all", "high", "low")
SIDES_CYCLE = ("both", "long", "short")
THRESHOLDS = (0.25, 0.35, 0.5, 0.65, 0.75, 0.85, 0.95, 1.0)
MIN_SIZE = (50, 12)
VENUE_NAMES = {v.name: v.header for v in VENUES.values()}


@dataclass
class AppOptions:
    symbol: str = "BTCUSDT"
    watchlist: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")
    range_name: str = "24h"
    lookback_ms: int = 30 * 86_400_000
    params: ModelParams = field(default_factory=ModelParams)
    threshold: float = 0.85
    rest_url: str = VENUES["binance"].rest_url
    ws_url: str = VENUES["binance"].ws_url
    venue: str = "binance"      # the first view: a venue or "all" (v cycles them)
    venue_urls: dict = field(default_factory=dict)  # venue → (REST, WS); default Binance's only
    feed_settings: FeedSettings = field(default_factory=FeedSettings)
    keymap: dict = field(default_factory=dict)
    demo: bool = False
    demo_history_days: float = 1.5
    demo_time_scale: float = 1.0
    demo_seed: int = 1
    demo_cache_dir: object = None
    demo_faults: object = None
    demo_market: object = None  # a liqtui.sim.market.Market (the CLI's; tests' prebuilt)
    demo_first: object = None   # (symbol, sim.child.Build generating it into demo_market): the CLI's
    store: object = None        # liqtui.store.Store: paint from it, keep what is seen live
    replay: object = None       # session.ReplaySpec: play stored data instead of the venue
    local_time: bool = False
    refresh_s: float = 0.25    # poll period of the redraw loop (the data rate is 1–4 Hz)
    live_s: float = 1.0        # the live column at most this often
    started: float | None = None  # time.monotonic() when the process started (for the log)


class AssetCommands(Provider):
    """Command palette: assets, ranges, filters and the other actions."""

    def _commands(self):
        app: LiqApp = self.app  # type: ignore[assignment]
        out = []
        syms = list(dict.fromkeys([*app.options.watchlist, *app.session.symbols]))
        for s in syms:
            out.append((f"Asset: {s}", lambda s=s: app.switch_asset(s), "switch to this asset"))
        for r in RANGE_NAMES:
            out.append((f"Range: {r}", lambda r=r: app.set_range(r), "display range"))
        for t in TIERS_CYCLE:
            out.append((f"Leverage filter: {t}", lambda t=t: app.set_tiers(t), "tiers shown"))
        for s in SIDES_CYCLE:
            out.append((f"Side filter: {s}", lambda s=s: app.set_sides(s), "sides shown"))
        for name in ("truecolor", "256", "16", "mono", "auto"):
            out.append((f"Palette: {name}", lambda n=name: app.set_palette(n),
                        "heatmap colours (auto follows the terminal)"))
        for v in app.session.views():
            out.append((f"Venue: {v if v == ALL else VENUES[v].label}",
                        lambda v=v: app.set_venue(v), "v cycles the venues"))
        out += [
            ("Levels stacked by venue (on/off)", app.action_stack_venues, "V, with venue all"),
            ("Help: keys and how this is estimated", app.action_help, "?"),
            ("Feed events", app.action_feed_events, "recent feed states and errors"),
            ("Pause / resume the display", app.action_pause, "feeds keep running"),
            ("Reset price zoom", lambda: app.action_zoom(0), "0"),
        ]
        return out

    async def discover(self) -> Hits:
        for name, cb, help_text in self._commands():
            yield DiscoveryHit(name, cb, help=help_text)

    async def search(self, query: str) -> Hits:
        m = self.matcher(query)
        for name, cb, help_text in self._commands():
            score = m.match(name)
            if score > 0:
                yield Hit(score, m.highlight(name), cb, help=help_text)


class MainScreen(Screen):
    BINDINGS = keyspec.bindings(app=False)
    DEFAULT_CSS = """
    MainScreen { layout: vertical; }
    #body { height: 1fr; }
    #heatmap { width: 1fr; height: 1fr; }
    #side { width: 40; height: 1fr; border-left: solid $panel-lighten-2; }
    #side.-narrow { width: 30; }
    #side.-hidden { display: none; }
    #side LiqMap.-hidden { display: none; }
    #levels-title, #map-title { height: 1; color: $text-muted; text-style: bold; }
    #map-title.-hidden { display: none; }
    #inspect { height: 1; background: $panel; display: none; }
    #inspect.-on { display: block; }
    #too-small { display: none; width: 1fr; height: 1fr; content-align: center middle;
        text-align: center; }
    MainScreen.-too-small #too-small { display: block; }
    MainScreen.-too-small #body, MainScreen.-too-small HeaderBar,
    MainScreen.-too-small Footer, MainScreen.-too-small #inspect { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="body"):
            yield HeatmapView(id="heatmap", threshold=self.app.threshold,
                              local_time=self.app.options.local_time)
            with Vertical(id="side"):
                yield Static("Top levels", id="levels-title")
                yield LevelsList(id="levels")
                yield Static("Liquidation map (cumulative)", id="map-title")
                yield LiqMap(id="liqmap")
        yield Static("", id="inspect")
        yield Static("terminal too small\n(need at least "
                     f"{MIN_SIZE[0]}×{MIN_SIZE[1]})", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        self.app.main_mounted()

    def on_resize(self, event) -> None:
        self.app.layout_for(event.size.width, event.size.height)

    # actions bound on this screen: delegate to the app
    def action_next_asset(self): self.app.action_next_asset()
    def action_prev_asset(self): self.app.action_prev_asset()
    def action_asset(self, n: int): self.app.action_asset(n)
    def action_pick_asset(self): self.app.action_pick_asset()
    def action_range(self, d: int): self.app.action_range(d)
    def action_zoom(self, d: int): self.app.action_zoom(d)
    def action_cycle_tiers(self): self.app.action_cycle_tiers()
    def action_cycle_sides(self): self.app.action_cycle_sides()
    def action_threshold(self, d: int): self.app.action_threshold(d)
    def action_pause(self): self.app.action_pause()
    def action_replay_speed(self, d: int): self.app.action_replay_speed(d)
    def action_feed_events(self): self.app.action_feed_events()
    def action_cycle_venue(self): self.app.action_cycle_venue()
    def action_stack_venues(self): self.app.action_stack_venues()
    def action_cursor(self, dx: int, dy: int): self.app.action_cursor(dx, dy)
    def action_cursor_leave(self): self.app.action_cursor_leave()


class LiqApp(App):
    TITLE = "liqtui"
    BINDINGS = keyspec.bindings(app=True)
    COMMANDS = App.COMMANDS | {AssetCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, options: AppOptions | None = None, **kw):
        super().__init__(**kw)
        self.options = o = options or AppOptions()
        # --demo serves every venue from the one simulated exchange (its URL comes at start)
        urls = o.venue_urls or {v: (o.rest_url, o.ws_url)
                                for v in (VENUES if o.demo else ("binance",))}
        self.session = Session(
            urls, view=o.venue, params=o.params,
            lookback_ms=o.lookback_ms, range_ms=UI_RANGES[o.range_name],
            settings=o.feed_settings, store=o.store, replay=o.replay)
        self.stacked = False  # the levels list stacked by venue (with the venue sum)
        self.symbol = o.symbol.upper()
        self.range_name = o.range_name
        self.zoom = 1.0
        self.threshold = o.threshold
        self.paused = False
        self.started = o.started or time.monotonic()
        self.first_paint: float | None = None   # seconds from start to the first heatmap
        self._shown: tuple | None = None
        self._last_live = 0.0
        self._feeds_ready = False
        self.status_note = ""

    # ------------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_mount(self) -> None:
        if self.options.keymap:
            self.set_keymap(self.options.keymap)

    def main_mounted(self) -> None:
        """The main screen is composed: start the feeds and the redraw loop."""
        self.view.can_focus = False  # the cursor keys are the screen's (ids in keys.py)
        self.main.set_focus(None)
        self.set_interval(self.options.refresh_s, self._refresh)
        # what the redraw loop's poll cannot say: a venue left out of the sum or back (a
        # notification), a state change of the asset on screen (its header at once)
        self.session.subscribe(self._on_session_event, StateChanged, VenueLeftOut)
        # until the first heatmap, look for it at 100 Hz: the first paint should not wait for
        # the next tick of the 4 Hz redraw loop (a poll is a dict lookup; the progress
        # meanwhile is the redraw loop's)
        self._first_poll = self.set_interval(0.01, self._refresh_until_painted)
        self.run_worker(self._start(), name="start", exclusive=True, group="start")
        self.layout_for(self.size.width, self.size.height)
        self._refresh()

    async def _start(self) -> None:
        o = self.options
        if o.demo:
            self.status_note = "starting the simulated exchange…"
            try:
                demo = await self.session.start_demo(
                    (self.symbol, *o.watchlist), seed=o.demo_seed,
                    history_days=o.demo_history_days, time_scale=o.demo_time_scale,
                    cache_dir=o.demo_cache_dir, faults=o.demo_faults, market=o.demo_market,
                    first=o.demo_first)
            except Exception as e:  # noqa: BLE001
                self.status_note = f"demo failed: {e}"
                log.exception("demo failed")
                return
            # the demo knows only its own symbols (some still being built): the watchlist and
            # the picker are those
            served = demo.symbols
            self.options.watchlist = tuple(s for s in o.watchlist if s in served) or served
            if self.symbol not in served:
                self.symbol = served[0]
            self.status_note = ""
        self._feeds_ready = True
        self.session.switch(self.symbol)
        self.run_worker(self._load_symbols(), name="symbols", group="symbols")

    async def _load_symbols(self) -> None:
        """The venue's list for the picker; watchlist entries it does not list are left out
        (with a notification), so ] [ and 1…9 step over them."""
        known = await self.session.load_symbols()
        wl = self.options.watchlist
        bad = [s for s in wl if known and s not in known and s != self.symbol]
        if bad:
            self.options.watchlist = tuple(s for s in wl if s not in bad)
            self.notify(f"watchlist: {', '.join(bad)} not listed by the venue; left out",
                        severity="warning", markup=False)

    def notify(self, message: str, *, title: str = "", severity="information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Textual's notification, its text made printable: a message may quote a symbol, a
        config value or a venue's reason (those pass ``markup=False`` too)."""
        super().notify(printable(message), title=printable(title, lines=False),
                       severity=severity, timeout=timeout, markup=markup)

    async def action_quit(self) -> None:
        await self.shutdown()
        self.exit()

    async def shutdown(self) -> None:
        try:
            await asyncio.wait_for(self.session.close(), 6.0)
        except Exception:  # noqa: BLE001
            pass

    async def on_unmount(self) -> None:
        if not self.session.closed:
            await self.shutdown()

    # ------------------------------------------------------------------ widgets

    @property
    def main(self) -> Screen:
        return self.screen_stack[0]

    @property
    def view(self) -> HeatmapView:
        return self.main.query_one(HeatmapView)

    @property
    def feed(self):
        return self.session.feeds.get(self.symbol)

    def layout_for(self, width: int, height: int) -> None:
        scr = self.main
        scr.set_class(width < MIN_SIZE[0] or height < MIN_SIZE[1], "-too-small")
        try:
            side = scr.query_one("#side")
            liqmap = scr.query_one(LiqMap)
            title = scr.query_one("#map-title")
        except Exception:  # noqa: BLE001 - not composed yet
            return
        side.set_class(width < 72, "-hidden")
        side.set_class(72 <= width < 110, "-narrow")
        short = height < 30
        liqmap.set_class(short, "-hidden")
        title.set_class(short, "-hidden")

    # ------------------------------------------------------------------ the redraw loop

    def _on_session_event(self, ev) -> None:
        if ev.symbol != self.symbol:
            return
        if isinstance(ev, VenueLeftOut):
            label = VENUES[ev.venue].label
            self.notify(f"{label} back in the sum" if ev.back else
                        f"{label} left out of the sum: {ev.reason}",
                        severity="information" if ev.back else "warning")
        elif ev.venue == self.session.view or self.session.view == ALL:
            self.call_later(self._refresh)

    def _refresh(self) -> None:
        try:
            self._refresh_inner()
        except NoMatches:  # the screen is being torn down (quit)
            pass
        except Exception:  # noqa: BLE001 - a drawing bug must not take the app down
            log.exception("refresh failed")

    def _refresh_inner(self) -> None:
        f = self.feed
        scr = self.main
        if f is not None and f.heatmap is not None and not self.paused:
            key = (id(f.series), f.version, self.range_name, self.zoom, self.threshold,
                   self.view.size)
            if key != self._shown:
                self._show(f, rescale=True)
                self._shown = key
            now = time.monotonic()
            if now - self._last_live >= self.options.live_s:
                self._last_live = now
                prov = f.provisional()
                if prov is None:
                    self.view.set_live(None, f.price())
                else:
                    self.view.set_live(prov.column, f.price(), prov.state)
                self.view.set_markers(list(f.liquidations))
                scr.query_one(LevelsList).set_price(f.price())
        if f is not None and f.heatmap is None:
            pct = f"{f.progress[0] * 100 // max(f.progress[1], 1)}%"
            msg = (f"error: {f.error}" if f.phase == "error" else
                   f"simulating {f.symbol}'s history {pct}…" if f.phase == "preparing" else
                   f"backfilling {pct}…" if f.progress[1] else "waiting for data…")
            lv = scr.query_one(LevelsList)
            if lv.message != msg or lv.levels:
                lv.set_levels([], None, 2, msg)
        try:
            scr.query_one(LiqMap).draw()
        except Exception:  # noqa: BLE001
            pass
        scr.query_one(HeaderBar).set_info(self._header_info(f))

    def _refresh_until_painted(self) -> None:
        if self.first_paint is not None:
            self._first_poll.stop()
            return
        f = self.feed
        if f is not None and f.heatmap is not None:
            self._refresh()

    def _show(self, f, rescale: bool) -> None:
        hm = f.heatmap
        self.view.show(hm, range_ms=UI_RANGES[self.range_name], zoom=self.zoom, rescale=rescale)
        if self.first_paint is None:
            self.first_paint = time.monotonic() - self.started
            log.info("first heatmap painted %.2f s after start", self.first_paint)
            if self.session.demo is not None:
                self.session.demo.build_rest()  # the other symbols now, not before the first paint
        dec = price_decimals(hm.bin_width)
        scr = self.main
        levels = hm.levels(24)
        by = None
        if self.stacked and isinstance(hm, VenueHeatmap):
            by = [{VENUES[v].label: x for v, x in hm.level_venues(lv).items()} for lv in levels]
        scr.query_one(LevelsList).set_levels(levels, f.price(), dec, by_venue=by)
        scr.query_one(LiqMap).set_map(hm.liquidation_map(), window=0.06 / self.zoom,
                                      palette=self.view.palette)

    def _header_info(self, f) -> HeaderInfo:
        p = self.session.params
        h = HeaderInfo(
            symbol=self.symbol, range_label=self.range_name, zoom=self.zoom,
            tiers=p.tier_filter if isinstance(p.tier_filter, str) else
            ",".join(f"{x:g}x" for x in p.tier_filter),
            sides=p.side_filter, demo=self.options.demo, paused=self.paused)
        c = self.session
        h.venue = (c.label(self.symbol) if c.view == ALL else
                   VENUE_NAMES.get(c.view, VENUES[c.view].label)) + \
            (" (simulated)" if self.options.demo else " (stored)" if self.options.replay else "")
        if self.view.hm is not None and self.view.scale.full_usd > 0:
            h.legend_usd = self.view.scale.full_usd
        if f is None:
            h.state = "CONNECTING" if self._feeds_ready else "STARTING"
            h.note = self.status_note
            return h
        price = f.price()
        h.price = price
        if f.heatmap is not None:
            h.decimals = price_decimals(f.heatmap.bin_width)
        h.change = f.change_24h()
        oi = f.open_interest()
        if oi is not None and price:
            h.oi_usd = oi.base * price
        if f.phase == "error":
            h.state, h.note = "ERROR", f.error[:80]
        elif f.phase == "preparing":
            h.state, h.note = "PREPARING", "simulating its history"
        elif f.state is not None:
            h.state = f.state.value
        if f.phase in ("backfilling", "preparing") or f.progress[1]:
            h.progress = f.progress
            if f.heatmap is None and f.phase == "backfilling":
                h.state = "BACKFILLING"
        if f.last_data_ms is not None:
            h.age_s = (self.session.clock() - f.last_data_ms) / 1000
        if self.options.replay is not None and h.state == "LIVE":
            live = f.live
            h.state = "REPLAY"  # stored data on the replay's clock, not the venue live
            h.note = (f"×{live.speed:g} · {utc(self.session.clock())}"
                      if hasattr(live, "speed") else "")
        elif self.options.replay is not None and h.state == "STOPPED":
            h.state, h.note = "REPLAY", "played to the end"
        if h.state not in ("LIVE",) and f.reason and not h.note and f.phase != "error":
            h.note = f.reason[:60]
        if f.older_error and not h.note:
            h.note = f.older_error[:60]
        if isinstance(f, VenueSum):
            h.summed = True
            failed = [VENUES[v].label for v, r in f.dropped.items() if r not in WAITING]
            if failed and not h.note:  # why: in the feed events (e)
                h.note = f"left out: {', '.join(failed)}"
        return h

    # ------------------------------------------------------------------ assets

    def switch_asset(self, symbol: str) -> None:
        symbol = symbol.strip().upper()
        if not symbol.isalnum():
            self.notify(f"{symbol!r} is not a symbol", severity="warning", markup=False)
            return
        if not self._feeds_ready:
            self.symbol = symbol
            return
        known = self.session.symbols
        if not known and symbol not in self.session.feeds:
            # the venue's list is not here yet: ask for it first, then switch or say why not
            self.run_worker(self._switch_checked(symbol), group="switch", exclusive=True)
            return
        if known and symbol not in known:
            self._unknown(symbol, known)
            return
        self._switch(symbol)

    async def _switch_checked(self, symbol: str) -> None:
        known = await self.session.load_symbols()
        if known and symbol not in known:
            self._unknown(symbol, known)
        else:  # listed, or the venue cannot say now: the feed state will
            self._switch(symbol)

    def _unknown(self, symbol: str, known) -> None:
        """Say so; the current asset stays."""
        near = difflib.get_close_matches(symbol, list(known), n=3)
        self.notify(f"unknown symbol {symbol}: not a perpetual the venue lists "
                    f"({len(known)} are)" + (f"; did you mean {', '.join(near)}?" if near else ""),
                    severity="warning", markup=False)

    def _switch(self, symbol: str) -> None:
        self.symbol = symbol
        self._shown = None
        self._last_live = 0.0  # its price and live column at once, not up to live_s later
        self.view.cursor = None
        if self.paused:
            self.paused = False
        self.main.query_one(LevelsList).set_levels([], None, 2, "backfilling…")
        f = self.session.switch(symbol)
        if f.series.params != self.session.params and f.series.steps is not None:
            self.run_worker(self.session.rebuild(symbol), group="rebuild", exclusive=True)
        if f.heatmap is not None:
            self._show(f, rescale=True)
            self._shown = None
        else:  # not the previous asset's maps under this one's name
            self.view.show(None, range_ms=UI_RANGES[self.range_name])
            self.main.query_one(LiqMap).set_map(None)
        self._refresh()

    def action_next_asset(self) -> None:
        self._step_asset(1)

    def action_prev_asset(self) -> None:
        self._step_asset(-1)

    def _step_asset(self, d: int) -> None:
        wl = list(self.options.watchlist)
        if not wl:
            return
        i = wl.index(self.symbol) if self.symbol in wl else -1 if d > 0 else 0
        self.switch_asset(wl[(i + d) % len(wl)])

    def action_asset(self, n: int) -> None:
        wl = self.options.watchlist
        if 0 <= n < len(wl):
            self.switch_asset(wl[n])
        else:
            self.notify(f"the watchlist has {len(wl)} assets", severity="warning")

    def action_pick_asset(self) -> None:
        def picked(sym):
            if sym:
                self.switch_asset(sym)

        self.push_screen(AssetPicker(self.session.symbols, list(self.options.watchlist)),
                         picked)

    # ------------------------------------------------------------------ view

    def set_range(self, name: str) -> None:
        self.range_name = name
        self.session.range_ms = UI_RANGES[name]
        if UI_RANGES[name] > self.session.lookback_ms:
            self.notify(f"range {name} is longer than the lookback; showing what there is")
        self._refresh()

    def action_range(self, d: int) -> None:
        i = RANGE_NAMES.index(self.range_name)
        self.set_range(RANGE_NAMES[max(0, min(len(RANGE_NAMES) - 1, i + d))])

    def action_zoom(self, d: int) -> None:
        if d == 0:
            self.zoom = 1.0
        else:
            i = min(range(len(ZOOMS)), key=lambda k: abs(ZOOMS[k] - self.zoom))
            self.zoom = ZOOMS[max(0, min(len(ZOOMS) - 1, i + d))]
        self._refresh()

    def action_threshold(self, d: int) -> None:
        i = min(range(len(THRESHOLDS)), key=lambda k: abs(THRESHOLDS[k] - self.threshold))
        self.threshold = THRESHOLDS[max(0, min(len(THRESHOLDS) - 1, i + d))]
        self.view.scale.threshold = self.threshold
        self._refresh()
        self.view.can_focus = False  # the cursor keys are the screen's (ids in keys.py)
        self.main.set_focus(None)

    def set_palette(self, name: str) -> None:
        self.view.palette_name = name
        self.view.redraw()
        self._shown = None  # the levels and the liquidation map follow at the next poll

    def action_cycle_venue(self) -> None:
        views = self.session.views()
        if len(views) == 1:
            self.notify(f"only {VENUES[views[0]].label} is configured", severity="warning")
            return
        i = views.index(self.session.view) if self.session.view in views else -1
        self.set_venue(views[(i + 1) % len(views)])

    def set_venue(self, view: str) -> None:
        """Show one venue or the sum ("all"); its feeds start if they are not running."""
        if not self._feeds_ready:
            self.session.view = view
            return
        self._shown = None
        self.view.cursor = None
        f = self.session.set_view(view, self.symbol)
        if f is not None and f.series.params != self.session.params and \
                f.series.steps is not None:
            self.run_worker(self.session.rebuild(self.symbol), group="rebuild", exclusive=True)
        if f is None or f.heatmap is None:
            self.main.query_one(LevelsList).set_levels([], None, 2, "backfilling…")
        self._refresh()

    def action_stack_venues(self) -> None:
        self.stacked = not self.stacked
        if self.stacked and self.session.view != ALL:
            self.notify("levels stack by venue with the venue sum (v until all)")
        self._shown = None
        self._refresh()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.session.replay_pause(self.paused)  # a replay's clock stops with the view
        self._shown = None
        self._refresh()

    def action_replay_speed(self, d: int) -> None:
        if self.options.replay is None:
            self.notify("replay speed: only in liqtui replay", severity="warning")
            return
        speed = self.session.replay_speed(2.0 if d > 0 else 0.5)
        if speed is not None:
            self.notify(f"replay ×{speed:g}")
            self._refresh()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_feed_events(self) -> None:
        self.push_screen(FeedEventsScreen(self.session))

    def action_cursor(self, dx: int, dy: int) -> None:
        self.view.action_cursor(dx, dy)

    def action_cursor_leave(self) -> None:
        self.view.action_leave_cursor()
        self.main.query_one("#inspect").set_class(False, "-on")

    def on_heatmap_view_inspect_closed(self, msg) -> None:
        self.main.query_one("#inspect").set_class(False, "-on")

    def on_heatmap_view_inspect(self, msg) -> None:
        bar = self.main.query_one("#inspect", Static)
        if msg.time is None:
            when = "live column"
        else:
            conv = time.localtime if self.options.local_time else time.gmtime
            when = time.strftime("%Y-%m-%d %H:%M", conv(msg.time / 1000)) + \
                ("" if self.options.local_time else " UTC")
        dec = self._decimals()
        text = Text()
        text.append(" inspect ", "bold black on #5fafff")
        text.append(f" {when} · {msg.price_lo:,.{dec}f}–{msg.price_hi:,.{dec}f} · ")
        text.append(usd(msg.usd), "bold")
        if msg.tiers:
            mix = [f"{k} {usd(a + b)}" for k, (a, b) in msg.tiers.items() if a + b > 0]
            if mix:
                text.append(" · tiers " + " ".join(mix), "dim")
        bar.update(text, layout=False)
        bar.set_class(True, "-on")

    def _decimals(self) -> int:
        f = self.feed
        return price_decimals(f.heatmap.bin_width) if f and f.heatmap is not None else 2

    # ------------------------------------------------------------------ filters

    def action_cycle_tiers(self) -> None:
        cur = self.session.params.tier_filter
        i = TIERS_CYCLE.index(cur) if cur in TIERS_CYCLE else -1
        self.set_tiers(TIERS_CYCLE[(i + 1) % len(TIERS_CYCLE)])

    def action_cycle_sides(self) -> None:
        i = SIDES_CYCLE.index(self.session.params.side_filter)
        self.set_sides(SIDES_CYCLE[(i + 1) % len(SIDES_CYCLE)])

    def set_tiers(self, tiers: str) -> None:
        self._set_params(self.session.params.replace(tier_filter=tiers))

    def set_sides(self, sides: str) -> None:
        self._set_params(self.session.params.replace(side_filter=sides))

    def _set_params(self, params: ModelParams) -> None:
        self.session.set_params(params)
        self._refresh()

        async def rebuild():
            await self.session.rebuild(self.symbol)
            self._refresh()

        self.run_worker(rebuild(), group="rebuild", exclusive=False)
