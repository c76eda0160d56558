"""``liqtui watch``: follow one symbol live, headless, as plain lines."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError
from ..feeds.venues import VENUES
from .options import (RANGES, add_feed_timer_args, add_model_args, all_settings, error,
                      positive_float, positive_int, venue_urls)

_WATCHED = VENUES["binance"]  # the one venue watch follows today


def add_parser(sub) -> None:
    wt = sub.add_parser(
        "watch",
        help="follow one symbol live, headless: feed states, liquidations, levels",
        description="Backfill the lookback over REST, print the estimated levels, then follow the\n"
        "venue live: feed states, realized liquidations, a status line with the provisional\n"
        "newest column every few seconds, and the levels again at every closed step. Plain\n"
        "lines (no screen control): fine in a pipe, a log or a tmux pane.",
        epilog="example:\n  liqtui watch --symbol BTCUSDT --range 3d --every 15\n"
        "  liqtui watch --symbol BTCUSDT --rest-url http://127.0.0.1:8800 --ws-url ws://127.0.0.1:8800",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wt.set_defaults(handler=cmd_watch)
    wt.add_argument("--symbol", required=True, metavar="SYMBOL", help="perpetual, e.g. BTCUSDT")
    wt.add_argument("--venue", choices=[_WATCHED.name], default=_WATCHED.name,
                    help=f"venue (default {_WATCHED.name}; the app, levels and record take "
                         "every venue)")
    wt.add_argument("--range", choices=list(RANGES), default="24h",
                    help="lookback the model runs over (default 24h)")
    wt.add_argument("--top", type=positive_int, default=5, metavar="N",
                    help="levels printed at each closed step (default 5)")
    wt.add_argument("--every", type=positive_float, default=10.0, metavar="S",
                    help="seconds between status lines (default 10)")
    wt.add_argument("--duration", type=positive_float, default=None, metavar="S",
                    help="stop after S seconds (default: until Ctrl-C)")
    wt.add_argument("--rest-url", metavar="URL", help=f"REST base URL (env {_WATCHED.env_rest})")
    wt.add_argument("--ws-url", metavar="URL", help=f"WebSocket base URL (env {_WATCHED.env_ws})")
    wt.add_argument("--config", metavar="FILE", help="config file (TOML)")
    add_feed_timer_args(wt)
    add_model_args(wt)


def cmd_watch(args) -> int:
    import asyncio

    try:
        settings, params, feed_settings = all_settings(args)
        rest_url, ws_url = venue_urls(args, [args.venue])[args.venue]
    except (ConfigError, ValueError) as e:
        return error(str(e))
    from ..feeds import BannedError, RestError, UnknownSymbolError
    from ..watch import Watch

    args.symbol, args.lookback_ms = args.symbol.upper(), RANGES[args.range]
    try:
        watch = Watch(args, params, settings.threshold, rest_url, ws_url, feed_settings)
        return asyncio.run(watch.run())
    except (UnknownSymbolError, ValueError) as e:  # an unknown symbol, a malformed URL
        return error(str(e))
    except (BannedError, RestError, OSError, asyncio.TimeoutError) as e:
        print(f"liqtui: error: {args.venue} at {rest_url}: {e or type(e).__name__}", file=sys.stderr)
        return 1
