"""Command line. Heavy modules (numpy, aiohttp, textual) are imported inside the command
handlers, so ``--help`` and ``--version`` stay fast."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .config import OPTIONS, ConfigError, load_settings

LEVELS_EPILOG = """\
Files are Binance's public USDⓈ-M futures dumps from data.binance.vision (.csv, or .zip holding
one CSV): klines (futures/um/daily/klines/SYMBOL/5m/) and metrics (futures/um/daily/metrics/
SYMBOL/, open interest every 5 minutes). Give several of each to cover several days; overlaps
are merged.

Settings come from defaults < config file (~/.config/liqtui/config.toml, or --config,
or $LIQTUI_CONFIG) < environment (LIQTUI_TIERS, LIQTUI_BIN_WIDTH, …) < these flags.

example:
  liqtui levels --klines BTCUSDT-5m-2024-05-*.zip --metrics BTCUSDT-metrics-2024-05-*.zip --top 15
"""


def _positive_int(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{s!r} is not accepted, expected an integer ≥ 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liqtui",
        description="Estimated crypto liquidation levels and heatmap in the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"liqtui {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    lv = sub.add_parser(
        "levels",
        help="print estimated liquidation levels from Binance data dumps",
        description="Run the LQ-1 model over Binance data dumps and print the largest estimated\n"
        "liquidation levels: estimates of where leveraged positions were opened, not known\n"
        "positions.",
        epilog=LEVELS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lv.set_defaults(handler=cmd_levels)
    io = lv.add_argument_group("input and output")
    io.add_argument("--klines", nargs="+", required=True, metavar="FILE", help="kline files")
    io.add_argument("--metrics", nargs="+", required=True, metavar="FILE",
                    help="metrics files (open interest)")
    io.add_argument("--top", type=_positive_int, default=10, metavar="N",
                    help="number of levels (default 10)")
    io.add_argument("--json", action="store_true", help="print a JSON document (schema 1)")
    io.add_argument("--config", metavar="FILE", help="config file (TOML)")

    m = lv.add_argument_group("model (LQ-1)")
    flag = {o.key: o.flag for o in OPTIONS.values()}
    m.add_argument(flag["leverages"], metavar="LIST", help="tier leverages (default 5,10,25,50,100)")
    m.add_argument(flag["weights"], metavar="LIST",
                   help="tier weights summing to 1 (default 0.1,0.25,0.3,0.2,0.15)")
    m.add_argument(flag["tier_filter"], metavar="all|high|low|LIST",
                   help="show tiers: all, high (≥ 25x), low (≤ 10x) or a list of leverages")
    m.add_argument(flag["side_filter"], metavar="both|long|short", help="show sides (default both)")
    m.add_argument(flag["bin_width"], metavar="W",
                   help="price bin width, 1-2-5 series (default auto: ~0.05%% of price)")
    m.add_argument(flag["tick_size"], metavar="T", help="venue tick; the auto bin width is never below it")
    m.add_argument(flag["alpha"], metavar="A", help="taker-share sensitivity in [0, 1] (default 1)")
    m.add_argument(flag["entry_spread"], action=argparse.BooleanOptionalAction, default=None,
                   help="spread entries over low/VWAP/high (default off)")
    m.add_argument(flag["both_sides"], action=argparse.BooleanOptionalAction, default=None,
                   help="each side receives the full net open interest (default off)")
    m.add_argument(flag["half_life"], metavar="DURATION",
                   help="decay half-life such as 12h, 30m, 2d, or off (default off)")
    m.add_argument(flag["seed"], action=argparse.BooleanOptionalAction, default=None,
                   help="start from the first open interest instead of empty (default off)")
    m.add_argument(flag["threshold"], metavar="θ",
                   help="colour threshold in (0, 1]: full yellow at θ × the largest bin (default 0.85)")
    return parser


def _flags(args) -> dict:
    """The option values given on the command line, keyed like the config."""
    return {k: getattr(args, o.flag[2:].replace("-", "_")) for k, o in OPTIONS.items()}


def _error(msg: str) -> int:
    print(f"liqtui: error: {msg}", file=sys.stderr)
    return 2


def _warn(msg: str) -> None:
    print(f"liqtui: warning: {msg}", file=sys.stderr)


def cmd_levels(args) -> int:
    try:
        settings = load_settings(_flags(args), config_path=args.config)
        params = settings.model_params()  # imports numpy; validates across settings
    except ConfigError as e:
        return _error(str(e))

    from .dumps import DumpError, load_dumps
    from .model import build_heatmap
    from .report import levels_document, levels_text

    try:
        data = load_dumps(args.klines, args.metrics)
    except DumpError as e:
        return _error(str(e))
    try:
        hm = build_heatmap(data.bars, params)
    except ValueError as e:  # e.g. an explicit bin width too fine for the price range
        return _error(f"{settings.sources.get('bin_width', 'settings')}: {e}"
                      if params.bin_width else str(e))
    for w in data.warnings + list(hm.warnings):
        _warn(w)

    if args.json:
        import json

        out = json.dumps(levels_document(hm, data.symbol, args.top), indent=2) + "\n"
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        out = levels_text(hm, data.symbol, args.top, settings.threshold, color=color)
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(
            "liqtui: the live heatmap is not built yet (it comes in a later release).\n"
            "For now, `liqtui levels` prints estimated liquidation levels from Binance data "
            "dumps: see `liqtui levels --help`."
        )
        return 0
    try:
        return args.handler(args)
    except BrokenPipeError:  # e.g. `liqtui levels … | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
