"""The venues liqtui reads, by name: everything a venue is, declared once.

One table, so the CLI, the app, the recorder, the simulated exchange, the benchmarks and the
tests choose and describe a venue the same way, and a new venue is one entry (plus its own
modules: ``feeds/<venue>.py`` and its parser, ``sim/<venue>.py``, fixtures and tests).

What an entry names must satisfy the venue contract: the REST client ``liqtui.feeds.contract
.VenueRest``, the live client ``liqtui.feeds.contract.VenueLive``, the simulated protocol
``liqtui.sim.protocol.SimProtocol``. Classes and functions are named lazily ("module:name")
so importing this module costs nothing (the CLI reads the names for ``--help``: no aiohttp,
no numpy, no textual).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Venue:
    name: str            # "binance": flags, config, store keys, events' ``venue``
    label: str           # "Binance": the header and messages
    market: str          # "USDⓈ-M perpetuals"
    header: str          # "Binance USD-M": the app's header when this venue is viewed
    rest: str            # "module:Class" of the REST client (a ``VenueRest``)
    live: str            # "module:Class" of the live client (a ``VenueLive``)
    sim: str             # "module:Class" of the simulated protocol (a ``SimProtocol``)
    rest_url: str        # default REST base URL (scheme-host-port)
    ws_url: str          # default WebSocket base URL
    taker_in_candles: bool = True  # its candles carry taker-buy volume (else 0.5 in backfill)
    # symbol mapping: our name (BTCUSDT) → the venue's and back, "module:function" each;
    # "" where the venue spells symbols as we do
    liquidations_complete: bool = True  # it publishes every liquidation (False: a sample)
    to_venue_symbol: str = ""
    from_venue_symbol: str = ""
    # the margin brackets its liquidation prices use: "package:resource" of a bracket table
    # in the format of ``liqtui/model/data/brackets.json`` (read by ``model.liqprice``)
    brackets: str = "liqtui.model:data/brackets.json"
    # the simulated market as this venue shows it (``liqtui.sim.venues.VenueShape``): a price
    # premium over the underlying market and its shares of the volume and open interest
    basis: float = 0.0
    volume_share: float = 1.0
    oi_share: float = 1.0

    @property
    def env_rest(self) -> str:
        return f"LIQTUI_{self.name.upper()}_REST_URL"

    @property
    def env_ws(self) -> str:
        return f"LIQTUI_{self.name.upper()}_WS_URL"

    def rest_class(self):
        return _load(self.rest)

    def live_class(self):
        return _load(self.live)

    def sim_class(self):
        return _load(self.sim)

    def venue_symbol(self, symbol: str) -> str:
        """Our symbol (``BTCUSDT``) as the venue names it (OKX: ``BTC-USDT-SWAP``);
        ValueError for a name the venue cannot have."""
        return _load(self.to_venue_symbol)(symbol) if self.to_venue_symbol else symbol

    def our_symbol(self, name: str) -> str:
        """The venue's name of a symbol as ours (``BTC-USDT-SWAP`` → ``BTCUSDT``);
        ValueError for one that is not ours (inverse swaps, futures, spot)."""
        return _load(self.from_venue_symbol)(name) if self.from_venue_symbol else name

    def brackets_text(self) -> str:
        """The venue's bracket table (JSON text), read from its package resource."""
        from importlib import resources

        package, _, resource = self.brackets.partition(":")
        return resources.files(package).joinpath(resource).read_text()

    def urls(self, rest_url: str | None = None, ws_url: str | None = None,
             env=None) -> tuple[str, str]:
        """REST and WebSocket base URLs: given (a flag) > ``LIQTUI_<VENUE>_*_URL`` > the
        venue's own; validated, a ValueError naming where a bad one came from."""
        env = os.environ if env is None else env
        out = []
        for given, flag, var, default, schemes in (
                (rest_url, "--rest-url", self.env_rest, self.rest_url, ("http", "https")),
                (ws_url, "--ws-url", self.env_ws, self.ws_url, ("ws", "wss"))):
            value = given or env.get(var) or default
            out.append(check_base_url(value, schemes, flag if given else var))
        return out[0], out[1]


VENUES: dict[str, Venue] = {v.name: v for v in (
    Venue("binance", "Binance", "USDⓈ-M perpetuals", "Binance USD-M",
          "liqtui.feeds.binance:BinanceRest", "liqtui.feeds.binance:BinanceLive",
          "liqtui.sim.binance:Protocol", "https://fapi.binance.com",
          "wss://fstream.binance.com", liquidations_complete=False),
    Venue("bybit", "Bybit", "linear perpetuals", "Bybit linear",
          "liqtui.feeds.bybit:BybitRest", "liqtui.feeds.bybit:BybitLive",
          "liqtui.sim.bybit:Protocol", "https://api.bybit.com", "wss://stream.bybit.com",
          taker_in_candles=False, basis=0.0004, volume_share=0.6, oi_share=0.55),
    Venue("okx", "OKX", "USDT swaps", "OKX swaps",
          "liqtui.feeds.okx:OkxRest", "liqtui.feeds.okx:OkxLive", "liqtui.sim.okx:Protocol",
          "https://www.okx.com", "wss://ws.okx.com:8443", taker_in_candles=False,
          to_venue_symbol="liqtui.feeds.okx_parse:inst_id",
          from_venue_symbol="liqtui.feeds.okx_parse:symbol_of",
          basis=-0.0003, volume_share=0.45, oi_share=0.35),
)}


def venue(name: str) -> Venue:
    """The venue called ``name`` (any case), or ValueError naming the value and the choices."""
    v = VENUES.get(str(name).strip().lower())
    if v is None:
        raise ValueError(f"unknown venue {name!r}; expected one of {', '.join(VENUES)}")
    return v


def venues(spec: str) -> list[Venue]:
    """``"all"`` or a comma-separated list of venue names → venues, in the table's order."""
    s = str(spec).strip().lower()
    if s == "all":
        return list(VENUES.values())
    chosen = {venue(x).name for x in s.split(",") if x.strip()}
    if not chosen:
        raise ValueError(f"no venue in {spec!r}; expected all or some of {', '.join(VENUES)}")
    return [v for v in VENUES.values() if v.name in chosen]


def _load(ref: str):
    mod, _, cls = ref.partition(":")
    return getattr(importlib.import_module(mod), cls)


def check_base_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    """A scheme-host-port base URL without a trailing slash, or ValueError naming the value."""
    if any(not c.isprintable() or c.isspace() for c in url.strip()):
        raise ValueError(f"{what} {url!r}: control characters or spaces; expected "
                         f"{'/'.join(schemes)}://host[:port]")
    parts = urlsplit(url.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what} {url!r}: expected {'/'.join(schemes)}://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{what} {url!r}: expected scheme://host[:port] without a path (the client "
            "appends the venue's paths)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{what} {url!r}: bad port") from None
    return f"{parts.scheme}://{parts.netloc}"
