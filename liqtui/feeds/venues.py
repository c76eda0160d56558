"""The venues liqtui reads, by name: their clients, default base URLs and settings names.

One table, so the CLI, the app, the recorder and the tests choose a venue the same way and a
new venue is one entry. Client classes are named lazily ("module:Class") so importing this
module costs nothing (the CLI reads the names for ``--help``: no aiohttp, no numpy).
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
    rest: str            # "module:Class" of the REST client (``backfill``, ``symbol``, …)
    live: str            # "module:Class" of the ``LiveFeed`` subclass
    rest_url: str        # default REST base URL (scheme-host-port)
    ws_url: str          # default WebSocket base URL
    taker_in_candles: bool = True  # its candles carry taker-buy volume (else 0.5 in backfill)
    liquidations_complete: bool = True  # it publishes every liquidation (False: a sample)

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
    Venue("binance", "Binance", "USDⓈ-M perpetuals", "liqtui.feeds.binance:BinanceRest",
          "liqtui.feeds.binance:BinanceLive", "https://fapi.binance.com",
          "wss://fstream.binance.com", liquidations_complete=False),
    Venue("bybit", "Bybit", "linear perpetuals", "liqtui.feeds.bybit:BybitRest",
          "liqtui.feeds.bybit:BybitLive", "https://api.bybit.com", "wss://stream.bybit.com",
          taker_in_candles=False),
    Venue("okx", "OKX", "USDT swaps", "liqtui.feeds.okx:OkxRest", "liqtui.feeds.okx:OkxLive",
          "https://www.okx.com", "wss://ws.okx.com:8443", taker_in_candles=False),
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
