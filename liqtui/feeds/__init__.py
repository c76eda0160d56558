"""Venue feeds: aiohttp clients that normalise wire data into ``liqtui.feeds.events``.

Names are imported lazily, so ``import liqtui.feeds.events`` (the sim does) stays free of
aiohttp and numpy.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "BinanceRest": "binance", "BinanceLive": "binance", "Backfill": "rest", "Gap": "binance",
    "RestError": "rest", "UnknownSymbolError": "rest", "BannedError": "rest",
    "check_base_url": "venues",
    "DEFAULT_REST_URL": "binance", "DEFAULT_WS_URL": "binance",
    "FeedSettings": "settings", "BarBuilder": "bars", "WeightLimiter": "ratelimit",
    "Backoff": "backoff", "parse_frame": "binance_parse", "SymbolInfo": "binance_parse",
    "LiveFeed": "live", "VENUES": "venues", "venue": "venues",
    "BybitRest": "bybit", "BybitLive": "bybit",
    "OkxRest": "okx", "OkxLive": "okx",
    "VenueRest": "contract", "VenueLive": "contract",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
