"""``liqtui replay``: play stored data through the app, as if it were live."""

from __future__ import annotations

import argparse

from ..config import ConfigError, load_settings
from .app import cmd_app
from .options import (add_data_dir_args, add_model_args, add_view_args, error, flag_values,
                      parse_time, positive_float)


def add_parser(sub) -> None:
    rp = sub.add_parser(
        "replay", help="play stored data through the app, as if it were live",
        description="Play what liqtui stored (liqtui record, or the app itself) through the "
        "app, as if it\nwere live: REPLAY in the header, p pauses, . and , double or halve "
        "the speed.",
        epilog="times: 2026-11-30T10:00 or 2026-11-30 10:00 (UTC), a date, or ms since the "
        "epoch\n\nexample:\n  liqtui replay --symbol BTCUSDT --from 2026-11-30T08:00 --to "
        "2026-11-30T12:00 --speed 60",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.set_defaults(handler=cmd_replay)
    rp.add_argument("--symbol", required=True, metavar="SYMBOL", help="perpetual, e.g. BTCUSDT")
    rp.add_argument("--from", dest="replay_from", required=True, metavar="TIME",
                    help="where the replay starts (UTC)")
    rp.add_argument("--to", dest="replay_to", required=True, metavar="TIME",
                    help="where it ends (UTC)")
    rp.add_argument("--speed", type=positive_float, default=1.0, metavar="N",
                    help="replayed seconds per real second (default 1; . and , in the app)")
    add_view_args(rp, "displayed range: 12h, 24h, 3d, 7d, 30d",
                  "what the model runs over before the start, up to 30d (default 30d)",
                  "time axis in local time", "write what the replay does to FILE")
    add_data_dir_args(rp)
    add_model_args(rp)

def cmd_replay(args) -> int:
    from ..store import Store, StoreError
    from ..ui.controller import ReplaySpec

    try:
        start = parse_time(args.replay_from, "--from")
        end = parse_time(args.replay_to, "--to")
        settings = load_settings(flag_values(args), config_path=args.config)
    except (ValueError, ConfigError) as e:
        return error(str(e))
    if end <= start:
        return error(f"--to {args.replay_to!r} must be after --from {args.replay_from!r}")
    symbol = args.symbol.strip().upper()
    try:
        with Store(settings.store_path(), readonly=True) as st:
            n = len(st.steps("binance", symbol, start, end)["time"])
            if st.missing or not (n or len(st.marks("binance", symbol, start, end)["time"])):
                return error(f"binance {symbol}: nothing stored between {args.replay_from} and "
                              f"{args.replay_to} in {st.path}; see liqtui store info")
    except StoreError as e:
        return error(str(e))
    # the app, with the replay as its feed: its options are the app's (no venue, no demo)
    args.command, args.demo, args.watchlist = None, False, symbol
    args.rest_url = args.ws_url = None
    args.demo_days, args.demo_speed, args.demo_seed = 1.0, 1.0, 1
    args.replay = ReplaySpec(start, end, args.speed)
    return cmd_app(args)
