"""``liqtui record``: capture symbols of one or every venue into the local store, headless."""

from __future__ import annotations

import argparse

from ..config import ConfigError
from ..units import DAY, STEP_MS
from .options import (add_data_dir_args, add_venue_args, all_settings, duration_between,
                      error, positive_float, sim_cache, symbol_list, venue_urls)

RECORD_EPILOG = """\
The store is $XDG_DATA_HOME/liqtui/liqtui.db (~/.local/share/liqtui/liqtui.db); --data-dir,
LIQTUI_DATA_DIR or [store] data_dir in the config file choose another directory, and
[store] retention (default 365d) how long data is kept. --demo records into the demo/
directory inside it, so simulated data never mixes with real captures.

examples:
  liqtui record --symbols BTCUSDT,ETHUSDT,SOLUSDT
  liqtui record --venue all --symbol-file perps.txt --backfill 7d
  liqtui record --demo --symbols BTCUSDT,ETHUSDT --duration 600
"""


def add_parser(sub) -> None:
    rc = sub.add_parser(
        "record",
        help="capture symbols into the local store, headless (no TUI)",
        description="Record what the venues send into the local store: each symbol's missing "
        "closed steps are\nbackfilled, then closed steps, open interest, mark prices and realized "
        "liquidations are\nfollowed live. Feed states are printed as plain lines; Ctrl-C or "
        "SIGTERM flushes the store\nand reports what was captured.",
        epilog=RECORD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.set_defaults(handler=cmd_record)
    add_venue_args(rc, "venue, or all of them (default binance)")
    rc.add_argument("--symbols", type=symbol_list, metavar="LIST", help="perpetuals, e.g. BTCUSDT,ETHUSDT")
    rc.add_argument("--symbol-file", metavar="FILE",
                    help="more symbols, one a line (# starts a comment)")
    rc.add_argument("--backfill", default="30d", metavar="DURATION",
                    help="history to fetch for a symbol new to the store, up to 30d (default 30d)")
    rc.add_argument("--every", type=positive_float, default=60.0, metavar="S",
                    help="seconds between status lines (default 60)")
    rc.add_argument("--duration", type=positive_float, default=None, metavar="S",
                    help="stop after S seconds (default: until Ctrl-C or SIGTERM)")
    add_data_dir_args(rc)
    rc.add_argument("--retention", metavar="DURATION",
                    help="prune data older than this, e.g. 90d, or off (default 365d; env "
                         "LIQTUI_RETENTION, [store] retention)")
    d = rc.add_argument_group("--demo: the simulated exchange, in-process")
    d.add_argument("--demo", action="store_true", help="record from the simulated exchange")
    d.add_argument("--demo-days", type=positive_float, default=1.0, metavar="D",
                   help="days of simulated history (default 1)")
    d.add_argument("--demo-speed", type=positive_float, default=1.0, metavar="X",
                   help="simulated seconds per real second (default 1)")
    d.add_argument("--demo-seed", type=int, default=1, metavar="N", help="market seed")


def _read_symbol_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ValueError(f"--symbol-file {path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--symbol-file {path}: not a text file (UTF-8), expected symbols "
                         "like BTCUSDT, one a line") from None
    out = []
    for n, line in enumerate(lines, 1):
        for word in line.split("#")[0].replace(",", " ").split():
            if not word.isalnum():
                raise ValueError(f"--symbol-file {path}, line {n}: {word!r} is not accepted, "
                                 "expected symbols like BTCUSDT, one a line")
            out.append(word.upper())
    return out


def cmd_record(args) -> int:
    import asyncio

    backfill_ms = duration_between(args.backfill, STEP_MS, 30 * DAY)
    if backfill_ms is None:
        return error(f"--backfill {args.backfill!r} is not accepted, expected a duration from "
                      "5m to 30d, e.g. 7d")
    try:
        settings, _, feed_settings = all_settings(args)
        symbols = list(args.symbols or ())
        if args.symbol_file:
            symbols += _read_symbol_file(args.symbol_file)
    except (ConfigError, ValueError) as e:  # a bad setting, an unreadable symbol file
        return error(str(e))
    symbols = list(dict.fromkeys(symbols))
    if not symbols:
        return error("nothing to record: give --symbols A,B or --symbol-file FILE")
    if (args.rest_url or args.ws_url) and (args.venue == "all" or args.demo):
        return error("--rest-url/--ws-url are one venue's URLs: give --venue NAME (not all), "
                      "without --demo")
    from ..feeds.venues import venues
    from ..record import Recorder, validate
    from ..session import Session
    from ..store import Store, StoreError
    from ..store import check as check_store

    try:
        names = [v.name for v in venues(args.venue)]
        urls = dict.fromkeys(names, ("", "")) if args.demo else venue_urls(args, names)
    except ValueError as e:
        return error(str(e))
    path = settings.store_path()
    own = args.demo and "data_dir" not in settings.values
    if own:
        path = path.parent / "demo" / path.name  # simulated data never mixes with captures
    try:
        check_store(path, create=True)  # refuse a bad file before building the demo
    except StoreError as e:
        return error(str(e))
    market = None
    if args.demo:  # built before any thread starts: a cold build forks worker processes
        from ..sim.market import CATALOGUE, Market

        unknown = [s for s in symbols if s not in CATALOGUE]
        if unknown:
            return error(f"--symbols {','.join(unknown)}: the simulated exchange does not list "
                          f"{'it' if len(unknown) == 1 else 'them'}; --demo serves "
                          f"{', '.join(sorted(CATALOGUE))}")
        try:
            market = Market(symbols, args.demo_seed, history_days=args.demo_days,
                            time_scale=args.demo_speed, cache_dir=sim_cache())
        except ValueError as e:
            return error(str(e))
    try:
        store = Store(path, retention_days=settings.retention_days,
                      kind="simulated" if args.demo else "real",
                      unmarked="simulated" if own else "real")
    except StoreError as e:  # StoreKindError too: the other kind of data there (exit 2)
        return error(str(e))

    async def main() -> int:
        session = Session(urls, view=names[0], params=None, lookback_ms=backfill_ms,
                          range_ms=backfill_ms, settings=feed_settings)
        try:
            if market is not None:
                demo = await session.start_demo(symbols, market=market)
                print(f"simulated exchange: {demo.exchange.rest_url} · {demo.exchange.ws_url}",
                      flush=True)
            chosen, unknown = await validate(session, symbols, store)
            if unknown:
                return error(f"--symbols: {', '.join(unknown)}: not listed by "
                             f"{' or '.join(names)} (perpetuals only)")
            rec = Recorder(session, store, chosen, backfill_ms=backfill_ms, every=args.every,
                           duration=args.duration)
            return await rec.run()
        finally:
            await session.close()

    try:
        return asyncio.run(main())
    finally:
        store.close()


