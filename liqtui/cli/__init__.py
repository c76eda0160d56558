"""Command line: one module per command (``app`` is the default, no command), the option
groups and validators they share in ``options``. A command parses, validates, builds what it
needs and hands it to a front end (the app, watch, record) or a report; the work itself is
done elsewhere. Heavy modules (numpy, aiohttp, textual) are imported inside the command
handlers, so ``--help`` and ``--version`` stay fast."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from . import levels, record, replay, sim, store, watch
from .app import APP_EPILOG, cmd_app
from .options import VENUE_NAMES, Parser, add_app_args, add_app_store_args

__all__ = ["VENUE_NAMES", "build_parser", "main"]

COMMANDS = (levels, watch, sim, record, store, replay)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="liqtui",
        description="Estimated crypto liquidation levels and heatmap in the terminal.\n"
        "Without a command: the live heatmap (Binance USDⓈ-M; --demo: offline, against the "
        "simulated exchange).",
        epilog=APP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"liqtui {__version__}")
    add_app_args(parser)
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    add_app_store_args(parser)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return cmd_app(args)
        return args.handler(args)
    except BrokenPipeError:  # e.g. `liqtui levels … | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
