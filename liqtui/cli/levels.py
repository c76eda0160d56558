"""``liqtui levels``: the largest estimated liquidation levels, once, as a table or JSON; from
Binance's dump files, one venue or every venue over the network, or the local store."""

from __future__ import annotations

import argparse
import os
import sys

from ..config import ConfigError
from ..feeds.venues import VENUES
from ..units import and_list, printable
from .options import (DATA_DIR_HELP, RANGES, Exit, add_model_args, add_venue_args, all_settings,
                      error, open_store_readonly, positive_int, venue_urls, warn)

LEVELS_EPILOG = """\
Either files or --symbol. Files are Binance's public USDⓈ-M futures dumps from data.binance.vision (.csv, or .zip holding
one CSV): klines (futures/um/daily/klines/SYMBOL/5m/) and metrics (futures/um/daily/metrics/
SYMBOL/, open interest every 5 minutes). Give several of each to cover several days; overlaps
are merged.

Settings come from defaults < config file (~/.config/liqtui/config.toml, or --config,
or $LIQTUI_CONFIG) < environment (LIQTUI_TIERS, LIQTUI_BIN_WIDTH, …) < these flags.

examples:
  liqtui levels --klines BTCUSDT-5m-2024-05-*.zip --metrics BTCUSDT-metrics-2024-05-*.zip --top 15
  liqtui levels --venue binance --symbol ETHUSDT --range 7d --json
  liqtui levels --venue all --symbol BTCUSDT --range 3d

--venue all backfills every venue at once and sums their models on the first venue's grid
(each venue's prices mapped by the ratio of the venues' prices, so basis does not smear the
bands). A venue that fails, or whose open interest is off by orders of magnitude from the
others, is left out with a warning on stderr (and in the JSON's "dropped"). """ + and_list(
    v.label for v in VENUES.values() if not v.taker_in_candles) + """
candles carry no taker-buy volume: their backfill uses a 0.5 taker share.
"""


def add_parser(sub) -> None:
    lv = sub.add_parser(
        "levels",
        help="print estimated liquidation levels (Binance dumps, or venues over the network)",
        description="Run the LQ-1 model over Binance data dumps and print the largest estimated\n"
        "liquidation levels: estimates of where leveraged positions were opened, not known\n"
        "positions.",
        epilog=LEVELS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lv.set_defaults(handler=cmd_levels)
    io = lv.add_argument_group("input: data dump files")
    io.add_argument("--klines", nargs="+", metavar="FILE", help="kline files")
    io.add_argument("--metrics", nargs="+", metavar="FILE", help="metrics files (open interest)")
    net = lv.add_argument_group("input: the venue over the network (instead of files)")
    add_venue_args(net, "venue, or all: every venue summed on one grid with basis mapping "
                        "(default binance)", ws=False)
    net.add_argument("--symbol", metavar="SYMBOL",
                     help="perpetual, e.g. BTCUSDT (the same name on every venue)")
    net.add_argument("--range", choices=list(RANGES), default="24h",
                     help="lookback to backfill and model (default 24h; closed 5-minute steps)")
    io = lv.add_argument_group("output")
    io.add_argument("--top", type=positive_int, default=10, metavar="N",
                    help="number of levels (default 10)")
    io.add_argument("--json", action="store_true", help="print a JSON document (schema 1)")
    io.add_argument("--config", metavar="FILE", help="config file (TOML)")

    s = lv.add_argument_group("input: the local store (instead of the network)")
    s.add_argument("--source", choices=("network", "store"), default="network",
                   help="with --symbol: fetch over the network, or read what liqtui record "
                        "stored (default network)")
    s.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    add_model_args(lv)


def _progress_printer():
    def show(done, total):
        if done is None:
            sys.stderr.write("\r\033[K")
        elif total:
            sys.stderr.write(f"\rbackfilling … {100 * done // total:3d} %")
        sys.stderr.flush()
    return show


def _inputs(args, by_files: bool, every: bool):
    """What the model runs over, from the files, the store, one venue or every venue: see
    ``liqtui.session.inputs``. Raises InputError (or Exit, the message printed)."""
    from ..session import inputs

    if by_files:
        return inputs.files_input(args.klines, args.metrics)
    if args.source == "store":
        return inputs.store_input(open_store_readonly(args), args.venue, args.symbol,
                                  args.range)
    if every and args.rest_url:
        raise Exit(error("--rest-url names one venue's URL; with --venue all set each "
                           "venue's in the environment: "
                           + ", ".join(v.env_rest for v in VENUES.values())))
    names = list(VENUES) if every else [args.venue]
    try:
        urls = {name: rest for name, (rest, _) in venue_urls(args, names).items()}
    except ValueError as e:  # a malformed --rest-url or LIQTUI_<VENUE>_REST_URL
        raise Exit(error(str(e))) from None
    progress = _progress_printer() if sys.stderr.isatty() else None
    if every:
        return inputs.all_venues_input(urls, args.symbol, args.range, progress)
    return inputs.network_input(args.venue, urls[args.venue], args.symbol, args.range, progress)


def cmd_levels(args) -> int:
    by_files = args.klines is not None or args.metrics is not None
    if by_files and args.symbol:
        return error("give either --klines/--metrics files or --symbol, not both")
    if by_files and not (args.klines and args.metrics):
        return error("files need both --klines FILE … and --metrics FILE …")
    if not by_files and not args.symbol:
        return error("nothing to read: give --symbol SYMBOL (over the network) or "
                      "--klines FILE … --metrics FILE … (data dumps)")
    if by_files and args.venue != "binance":
        return error(f"--venue {args.venue}: the dump files are Binance's; --venue needs --symbol")
    try:
        settings, params, _ = all_settings(args)  # imports numpy; validates across settings
    except ConfigError as e:
        return error(str(e))

    from ..model import build_heatmap
    from ..report import add_venues, levels_document, levels_text, venue_title, venues_text
    from ..session.inputs import InputError

    if args.venue == "all" and args.source == "store":
        return error("--venue all reads the venues over the network; with --source store "
                      "name one venue")
    every = args.venue == "all" and not by_files
    try:
        if every:
            bars, failed, tick = _inputs(args, by_files, every)
            symbol, warnings = args.symbol.upper(), []
        else:
            bars, symbol, warnings, tick = _inputs(args, by_files, every)
    except Exit as e:
        return e.status
    except InputError as e:
        for line in e.lines:
            print(f"liqtui: error: {printable(line)}", file=sys.stderr)
        return e.status
    if tick and params.tick_size is None and params.bin_width is None:
        params = params.replace(tick_size=tick)
    try:
        if every:
            from ..model.venues import build_venues

            hm = build_venues(bars, params, failed=failed)
        else:
            hm = build_heatmap({k: bars[k] for k in bars}, params)
    except ValueError as e:  # e.g. an explicit bin width too fine for the price range
        return error(f"{settings.sources.get('bin_width', 'settings')}: {e}"
                      if params.bin_width else str(e))
    for w in warnings + list(hm.warnings):
        warn(w)

    venues = hm.venues if every else (args.venue,)
    if args.json:
        import json

        doc = levels_document(hm, symbol, args.top, venues)
        if every:
            add_venues(doc, hm, args.top)
        out = json.dumps(doc, indent=2) + "\n"
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        # the symbol is the one piece of outside text in the table (the colour is our own)
        out = venue_title(levels_text(hm, printable(symbol, lines=False), args.top,
                                      settings.threshold, color=color),
                          venues, every)
        if every:
            out += venues_text(hm, args.top)
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0
