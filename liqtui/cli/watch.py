"""``liqtui watch``: follow one symbol live, headless, as plain lines."""

from __future__ import annotations

import argparse

from ..config import ConfigError
from ..feeds.venues import VENUES
from .options import (RANGES, add_feed_timer_args, add_venue_args, add_model_args, all_settings, error,
                      positive_float, positive_int, venue_urls)



def add_parser(sub) -> None:
    wt = sub.add_parser(
        "watch",
        help="follow one symbol live, headless: feed states, liquidations, levels",
        description="Backfill the lookback over REST, print the estimated levels, then follow the\n"
        "venue (or every venue, summed: --venue all) live: feed states, realized liquidations, a status line with the provisional\n"
        "newest column every few seconds, and the levels again at every closed step. Plain\n"
        "lines (no screen control): fine in a pipe, a log or a tmux pane.",
        epilog="example:\n  liqtui watch --symbol BTCUSDT --range 3d --every 15\n"
        "  liqtui watch --symbol BTCUSDT --rest-url http://127.0.0.1:8800 --ws-url ws://127.0.0.1:8800",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wt.set_defaults(handler=cmd_watch)
    wt.add_argument("--symbol", required=True, metavar="SYMBOL", help="perpetual, e.g. BTCUSDT")
    add_venue_args(wt, "venue, or all of them summed (default binance)")
    wt.add_argument("--range", choices=list(RANGES), default="24h",
                    help="lookback the model runs over (default 24h)")
    wt.add_argument("--top", type=positive_int, default=5, metavar="N",
                    help="levels printed at each closed step (default 5)")
    wt.add_argument("--every", type=positive_float, default=10.0, metavar="S",
                    help="seconds between status lines (default 10)")
    wt.add_argument("--duration", type=positive_float, default=None, metavar="S",
                    help="stop after S seconds (default: until Ctrl-C)")
    wt.add_argument("--config", metavar="FILE", help="config file (TOML)")
    add_feed_timer_args(wt)
    add_model_args(wt)


def cmd_watch(args) -> int:
    import asyncio

    try:
        settings, params, feed_settings = all_settings(args)
        urls = venue_urls(args, VENUES if args.venue == "all" else [args.venue])
    except (ConfigError, ValueError) as e:
        return error(str(e))
    from ..session import Session
    from ..watch import Watch

    lookback = RANGES[args.range]
    session = Session(urls, view=args.venue, params=params, lookback_ms=lookback,
                      range_ms=lookback, settings=feed_settings)
    watch = Watch(session, args.symbol, lookback=args.range, top=args.top,
                  threshold=settings.threshold, every=args.every, duration=args.duration)
    return asyncio.run(watch.run())
