"""What the commands share: option groups, validators, settings, URL resolution, and how a
command stops with a message (exit status 2 for bad input). Light: no numpy, aiohttp or
textual at import, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import OPTIONS, UI_RANGES, ConfigError, load_settings
from ..feeds.venues import VENUES
from ..units import parse_duration, printable

VENUE_NAMES = tuple(VENUES)  # the venue table is light to import (no aiohttp, no numpy)
RANGES = UI_RANGES  # the ranges a lookback (levels, watch) or the app's view may take
COLOR_SYSTEMS = {"auto": None, "truecolor": "truecolor", "256": "256", "16": "standard"}
DATA_DIR_HELP = "store directory (default $XDG_DATA_HOME/liqtui; env LIQTUI_DATA_DIR)"


# ---------------------------------------------------------------- stopping with a message


def error(msg: str) -> int:
    """Print ``msg`` (made printable: it may quote a venue, a file or an argument); 2."""
    print(f"liqtui: error: {printable(msg)}", file=sys.stderr)
    return 2


def warn(msg: str) -> None:
    print(f"liqtui: warning: {printable(msg)}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse with its error messages made printable: it quotes an unrecognised argument as
    typed (its sub-parsers are of this class too)."""

    def error(self, message: str):
        super().error(printable(message))


def private_log(path: str):
    """The ``--log`` file opened for appending: created readable by this user only (0600),
    and never through a symbolic link (OSError ELOOP), which could point anywhere."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


class LogFormatter(logging.Formatter):
    """The ``--log`` file's formatter: every line made printable (a venue's reason or a symbol
    can carry ESC, BEL or CR; the file is read with ``tail`` on a terminal). A message is one
    line (its newlines escaped, so nobody forges a record); a traceback keeps its lines."""

    def formatMessage(self, record) -> str:
        return printable(super().formatMessage(record), lines=False)

    def formatException(self, ei) -> str:
        return printable(super().formatException(ei))

    def formatStack(self, stack_info) -> str:
        return printable(super().formatStack(stack_info))


class Exit(Exception):
    """Stop a command with this exit status (the message is already printed)."""

    def __init__(self, status: int):
        self.status = status


# ---------------------------------------------------------------- validators (argparse types)


def positive_int(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{s!r} is not accepted, expected an integer ≥ 1")
    return n


def port_number(s: str) -> int:
    if not s.isdigit() or int(s) > 65535:
        raise argparse.ArgumentTypeError(f"{s!r} is not accepted, expected a port 0–65535")
    return int(s)


def positive_float(s: str) -> float:
    try:
        x = float(s)
    except ValueError:
        x = -1.0
    if not (x > 0 and x < float("inf")):
        raise argparse.ArgumentTypeError(f"{s!r} is not accepted, expected a positive number")
    return x


def symbol_list(s: str) -> tuple[str, ...]:
    out = tuple(x.strip().upper() for x in s.split(",") if x.strip())
    bad = [x for x in out if not x.isalnum()]
    if not out or bad:
        raise argparse.ArgumentTypeError(
            f"{s!r} is not accepted, expected symbols like BTCUSDT,ETHUSDT")
    return out


def parse_time(text: str, what: str) -> int:
    """UTC ISO date/time or ms since the epoch -> ms; ValueError naming the value."""
    from datetime import datetime, timezone

    s = text.strip()
    if s.isdigit():
        return int(s)
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not accepted, expected a UTC time such as "
                         "2026-11-30T10:00, a date, or ms since the epoch") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)


def duration_between(text: str, lo_ms: int, hi_ms: int) -> int | None:
    """``text`` as a duration in ms if it parses and lies in [lo_ms, hi_ms], else None."""
    try:
        ms = parse_duration(text)
    except ValueError:
        return None
    return ms if lo_ms <= ms <= hi_ms else None


# ---------------------------------------------------------------- option groups


def add_model_args(p) -> None:
    m = p.add_argument_group("model (LQ-1)")
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


def add_app_args(p) -> None:
    a = p.add_argument_group("the live view (no command)")
    a.add_argument("--demo", action="store_true",
                   help="run offline against the simulated exchange, started in-process")
    a.add_argument("--symbol", metavar="SYMBOL", help="perpetual to show first (default BTCUSDT)")
    a.add_argument("--watchlist", metavar="LIST",
                   help="assets for ] [ and 1…9 (default BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT,DOGEUSDT)")
    add_view_args(a, "displayed range: 12h, 24h, 3d, 7d, 30d (default 24h; < > in the app)",
                  "what the model runs over, up to 30d (default 30d)",
                  "time axis in local time (default UTC)", "write what the feeds do to FILE")
    add_venue_args(a, "venue shown first; all: the venues summed (default binance; v cycles)")
    a.add_argument("--config", metavar="FILE", help="config file (TOML)")
    a.add_argument("--demo-days", type=positive_float, default=1.5, metavar="D",
                   help="--demo: days of simulated history (default 1.5: the 24h view and "
                        "half a day before it)")
    a.add_argument("--demo-speed", type=positive_float, default=1.0, metavar="X",
                   help="--demo: simulated seconds per real second (default 1)")
    a.add_argument("--demo-seed", type=int, default=1, metavar="N", help="--demo: market seed")
    add_model_args(p)


def add_view_args(g, range_help: str, lookback_help: str, local_time_help: str,
                  log_help: str) -> None:
    """What the app shows and how, live or replayed: range, lookback, colours, time, log."""
    g.add_argument("--range", metavar="RANGE", help=range_help)
    g.add_argument("--lookback", metavar="DURATION", help=lookback_help)
    g.add_argument("--colors", choices=list(COLOR_SYSTEMS), default="auto",
                   help="colour depth (default auto; NO_COLOR is honoured)")
    g.add_argument("--local-time", action="store_true", help=local_time_help)
    g.add_argument("--log", metavar="FILE", help=log_help)


def add_app_store_args(parser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP + "; the app paints "
                        "from the store at once and keeps what it sees live there")


def add_data_dir_args(p) -> None:
    p.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument("--config", metavar="FILE", help="config file (TOML)")


def add_feed_timer_args(p) -> None:
    fd = p.add_argument_group("feed timers ([feeds] in the config file)")
    fd.add_argument("--stale-timeout", metavar="DURATION",
                    help="no data frame for this long: reconnect (default 30s)")
    fd.add_argument("--backoff-cap", metavar="DURATION",
                    help="longest wait between reconnects (default 30s)")
    fd.add_argument("--oi-poll", metavar="DURATION", help="open-interest poll period (default 5s)")
    fd.add_argument("--reconnect-after", metavar="DURATION",
                    help="reconnect before the venue's 24 h cut (default 23h50m)")


def env_names() -> str:
    """'BINANCE, BYBIT, OKX': the VENUE of LIQTUI_<VENUE>_REST_URL, from the registry."""
    return ", ".join(name.upper() for name in VENUES)


def add_venue_args(p, venue_help: str, *, ws: bool = True) -> None:
    """--venue (a registry name or all), --rest-url and (``ws``) --ws-url of that venue."""
    p.add_argument("--venue", choices=[*VENUE_NAMES, "all"], default="binance", help=venue_help)
    p.add_argument("--rest-url", metavar="URL",
                   help="REST base URL of --venue, scheme://host[:port] (default the venue's; "
                        f"env LIQTUI_<VENUE>_REST_URL, VENUE = {env_names()}; with --venue all, "
                        "only the env)")
    if ws:
        p.add_argument("--ws-url", metavar="URL",
                       help="WebSocket base URL of --venue (env LIQTUI_<VENUE>_WS_URL)")


# ---------------------------------------------------------------- settings, URLs, the store


def flag_values(args) -> dict:
    """The option values given on the command line, keyed like the config."""
    app = getattr(args, "command", None) is None
    return {k: getattr(args, o.flag[2:].replace("-", "_"), None) for k, o in OPTIONS.items()
            if app or o.table != "ui"}


def all_settings(args):
    """(settings, model params, feed settings) from every layer; raises ConfigError."""
    settings = load_settings(flag_values(args), config_path=args.config)
    return settings, settings.model_params(), settings.feed_settings()


def venue_urls(args, names) -> dict[str, tuple[str, str]]:
    """venue → (REST, WebSocket) base URLs for each venue in ``names``: --rest-url/--ws-url
    for ``args.venue`` (one venue's URLs), else LIQTUI_<VENUE>_*_URL, else the venue's own
    (``Venue.urls``). Validated: a ValueError names a bad one and where it came from."""
    given = (getattr(args, "rest_url", None), getattr(args, "ws_url", None))
    chosen = getattr(args, "venue", None)
    if chosen == "all" and any(given):
        raise ValueError("--rest-url/--ws-url name one venue's URL; with --venue all set each "
                         "venue's LIQTUI_<VENUE>_REST_URL / _WS_URL in the environment")
    return {name: VENUES[name].urls(*(given if name == chosen else ())) for name in names}


def open_store_readonly(args):
    from ..store import Store, StoreError

    try:
        settings = load_settings(flag_values(args), config_path=args.config)
        return Store(settings.store_path(), readonly=True)
    except (ConfigError, StoreError) as e:
        raise Exit(error(str(e))) from None


def sim_cache():
    """The user cache directory for the sim's generated history, or None if unusable."""
    from pathlib import Path

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = root / "liqtui" / "sim"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None
