"""Command line. Heavy modules (numpy, aiohttp, textual) are imported inside the command
handlers, so ``--help`` and ``--version`` stay fast."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .config import OPTIONS, ConfigError, load_settings
from .feeds.venues import VENUES

VENUE_NAMES = tuple(VENUES)  # the venue table is light to import (no aiohttp, no numpy)
RANGES = {"12h": 12 * 3_600_000, "24h": 24 * 3_600_000, "3d": 3 * 86_400_000,
          "7d": 7 * 86_400_000, "30d": 30 * 86_400_000}

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
others, is left out with a warning on stderr (and in the JSON's "dropped"). Bybit and OKX
candles carry no taker-buy volume: their backfill uses a 0.5 taker share.
"""


APP_EPILOG = """\
examples:
  liqtui                                  BTCUSDT live, 24h shown, 30 days modelled
  liqtui --symbol ETHUSDT --range 3d
  liqtui --demo                           offline, the simulated exchange in-process
  liqtui --colors 256 --log /tmp/liqtui.log

Keys: ? in the app (remap them in the [keys] table of the config file). Settings: defaults <
config file (~/.config/liqtui/config.toml: [model] [colour] [feeds] [ui] [keys]) < LIQTUI_*
environment < flags.
"""

COLOR_SYSTEMS = {"auto": None, "truecolor": "truecolor", "256": "256", "16": "standard"}


def _add_app_args(p) -> None:
    a = p.add_argument_group("the live view (no command)")
    a.add_argument("--demo", action="store_true",
                   help="run offline against the simulated exchange, started in-process")
    a.add_argument("--symbol", metavar="SYMBOL", help="perpetual to show first (default BTCUSDT)")
    a.add_argument("--watchlist", metavar="LIST",
                   help="assets for ] [ and 1…9 (default BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT,DOGEUSDT)")
    a.add_argument("--range", metavar="RANGE", help="displayed range: 12h, 24h, 3d, 7d, 30d "
                   "(default 24h; < > in the app)")
    a.add_argument("--lookback", metavar="DURATION",
                   help="what the model runs over, up to 30d (default 30d)")
    a.add_argument("--colors", choices=list(COLOR_SYSTEMS), default="auto",
                   help="colour depth (default auto; NO_COLOR is honoured)")
    a.add_argument("--local-time", action="store_true", help="time axis in local time (default UTC)")
    a.add_argument("--log", metavar="FILE", help="write what the feeds do to FILE")
    a.add_argument("--venue", choices=[*VENUE_NAMES, "all"], default="binance",
                   help="venue shown first; all: the venues summed (default binance; v cycles)")
    a.add_argument("--rest-url", metavar="URL",
                   help="REST base URL of --venue (env LIQTUI_<VENUE>_REST_URL for each venue)")
    a.add_argument("--ws-url", metavar="URL",
                   help="WebSocket base URL of --venue (env LIQTUI_<VENUE>_WS_URL for each venue)")
    a.add_argument("--config", metavar="FILE", help="config file (TOML)")
    a.add_argument("--demo-days", type=_positive_float, default=1.5, metavar="D",
                   help="--demo: days of simulated history (default 1.5: the 24h view and "
                        "half a day before it)")
    a.add_argument("--demo-speed", type=_positive_float, default=1.0, metavar="X",
                   help="--demo: simulated seconds per real second (default 1)")
    a.add_argument("--demo-seed", type=int, default=1, metavar="N", help="--demo: market seed")
    _add_model_args(p)


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
        description="Estimated crypto liquidation levels and heatmap in the terminal.\n"
        "Without a command: the live heatmap (Binance USDⓈ-M; --demo: offline, against the "
        "simulated exchange).",
        epilog=APP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"liqtui {__version__}")
    _add_app_args(parser)
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

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
    net.add_argument("--venue", choices=[*VENUE_NAMES, "all"], default="binance",
                     help="venue, or all: every venue summed on one grid with basis mapping "
                          "(default binance)")
    net.add_argument("--symbol", metavar="SYMBOL",
                     help="perpetual, e.g. BTCUSDT (the same name on every venue)")
    net.add_argument("--range", choices=list(RANGES), default="24h",
                     help="lookback to backfill and model (default 24h; closed 5-minute steps)")
    net.add_argument("--rest-url", metavar="URL",
                     help="REST base URL of the chosen venue, scheme://host[:port] (default the "
                          "venue's; env LIQTUI_<VENUE>_REST_URL, VENUE = BINANCE, BYBIT, OKX; "
                          "with --venue all, only the env)")
    io = lv.add_argument_group("output")
    io.add_argument("--top", type=_positive_int, default=10, metavar="N",
                    help="number of levels (default 10)")
    io.add_argument("--json", action="store_true", help="print a JSON document (schema 1)")
    io.add_argument("--config", metavar="FILE", help="config file (TOML)")

    _add_levels_store_args(lv)
    _add_model_args(lv)

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
    wt.add_argument("--venue", choices=["binance"], default="binance",
                    help="venue (default binance; the app, levels and record take all three)")
    wt.add_argument("--range", choices=list(RANGES), default="24h",
                    help="lookback the model runs over (default 24h)")
    wt.add_argument("--top", type=_positive_int, default=5, metavar="N",
                    help="levels printed at each closed step (default 5)")
    wt.add_argument("--every", type=_positive_float, default=10.0, metavar="S",
                    help="seconds between status lines (default 10)")
    wt.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                    help="stop after S seconds (default: until Ctrl-C)")
    wt.add_argument("--rest-url", metavar="URL", help="REST base URL (env LIQTUI_BINANCE_REST_URL)")
    wt.add_argument("--ws-url", metavar="URL", help="WebSocket base URL (env LIQTUI_BINANCE_WS_URL)")
    wt.add_argument("--config", metavar="FILE", help="config file (TOML)")
    fd = wt.add_argument_group("feed timers ([feeds] in the config file)")
    fd.add_argument("--stale-timeout", metavar="DURATION",
                    help="no data frame for this long: reconnect (default 30s)")
    fd.add_argument("--backoff-cap", metavar="DURATION",
                    help="longest wait between reconnects (default 30s)")
    fd.add_argument("--oi-poll", metavar="DURATION", help="open-interest poll period (default 5s)")
    fd.add_argument("--reconnect-after", metavar="DURATION",
                    help="reconnect before the venue's 24 h cut (default 23h50m)")
    _add_model_args(wt)

    sm = sub.add_parser(
        "sim",
        help="run the simulated exchange (Binance USDⓈ-M protocol on loopback)",
        description="Run the simulated exchange: a market of leveraged traders served over "
        "Binance USDⓈ-M\nREST and WebSocket on loopback, for demos, tests and benchmarks. "
        "Its liquidations are\nreal consequences of the simulated positions; /sim/truth "
        "returns their true liquidation map.",
        epilog="faults: comma-separated name=value, e.g. drop_every_s=30,malformed_rate=0.01,"
        "http_5xx_rate=0.05\n(names: drop_every_s, drop_abrupt, silent, malformed_rate, "
        "truncated_rate, extra_fields,\nslow_ms, http_429_burst, http_418_burst, "
        "http_5xx_rate, retry_after_s)\n\nexample:\n  liqtui sim --port 8800 --seed 7 "
        "--symbols BTCUSDT,ETHUSDT --time-scale 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sm.set_defaults(handler=cmd_sim)
    sm.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sm.add_argument("--port", type=_port, default=0, help="port (default: any free port)")
    sm.add_argument("--seed", type=int, default=1, help="market seed (default 1)")
    sm.add_argument("--symbols", type=_symbols, default=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                    metavar="LIST", help="symbols (default BTCUSDT,ETHUSDT,SOLUSDT)")
    sm.add_argument("--time-scale", type=_positive_float, default=1.0, metavar="X",
                    help="simulated seconds per real second (default 1)")
    sm.add_argument("--history-days", type=_positive_float, default=31.0, metavar="D",
                    help="days of past market to generate (default 31)")
    sm.add_argument("--regime", default="mixed", metavar="NAME", help="market regime (default mixed)")
    sm.add_argument("--faults", default="", metavar="SPEC", help="faults to inject (see below)")
    sm.add_argument("--fidelity", action="store_true",
                    help="score the model against the simulated traders' true map and exit")
    _add_store_commands(sub)
    _add_app_store_args(parser)
    return parser


def _add_model_args(p) -> None:
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


def _port(s: str) -> int:
    if not s.isdigit() or int(s) > 65535:
        raise argparse.ArgumentTypeError(f"{s!r} is not accepted, expected a port 0–65535")
    return int(s)


def _positive_float(s: str) -> float:
    try:
        x = float(s)
    except ValueError:
        x = -1.0
    if not (x > 0 and x < float("inf")):
        raise argparse.ArgumentTypeError(f"{s!r} is not accepted, expected a positive number")
    return x


def _symbols(s: str) -> tuple[str, ...]:
    out = tuple(x.strip().upper() for x in s.split(",") if x.strip())
    bad = [x for x in out if not x.isalnum()]
    if not out or bad:
        raise argparse.ArgumentTypeError(
            f"{s!r} is not accepted, expected symbols like BTCUSDT,ETHUSDT")
    return out


def _parse_faults(spec: str):
    """'name=value,…' → Faults, each value converted to its field's type."""
    from dataclasses import fields

    from .sim.faults import Faults

    faults, types = Faults(), {f.name: f.type for f in fields(Faults)}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, raw = item.partition("=")
        name = name.strip()
        if name not in types:
            raise ValueError(f"--faults: unknown fault {name!r}; known: {', '.join(sorted(types))}")
        kind = str(types[name])
        try:
            if "bool" in kind:
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off", ""):
                    raise ValueError
                value = raw.lower() in ("1", "true", "yes", "on", "")
            elif "int" in kind and "float" not in kind:
                value = int(raw)
            else:
                value = float(raw)
            if not isinstance(value, bool) and value < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"--faults: {name}={raw!r} is not accepted, expected a "
                             f"{'true/false' if 'bool' in kind else 'number ≥ 0'}") from None
        setattr(faults, name, value)
    return faults


def _sim_cache():
    """The user cache directory for the sim's generated history, or None if unusable."""
    from pathlib import Path

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = root / "liqtui" / "sim"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def cmd_sim(args) -> int:
    import asyncio
    import signal

    try:
        faults = _parse_faults(args.faults)
    except ValueError as e:
        return _error(str(e))
    if args.fidelity:
        from .sim.fidelity import fidelity_report, format_fidelity

        print(format_fidelity(fidelity_report()))
        return 0
    from .sim.market import Market
    from .sim.server import SimExchange

    try:
        market = Market(args.symbols, args.seed, history_days=args.history_days,
                        time_scale=args.time_scale, regime=args.regime, cache_dir=_sim_cache())
    except ValueError as e:
        return _error(str(e))

    async def serve() -> int:
        sx = SimExchange(market, faults)
        try:
            await sx.start(args.host, args.port)
        except OSError as e:
            return _error(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"liqtui sim: {', '.join(args.symbols)} · seed {args.seed} · time ×{args.time_scale:g}"
              f"{' · faults ' + args.faults if args.faults else ''}")
        print(f"  REST        {sx.rest_url}/fapi/v1/exchangeInfo")
        print(f"  WebSocket   {sx.ws_url}/market/stream?streams={args.symbols[0].lower()}@aggTrade")
        print(f"  truth       {sx.rest_url}/sim/truth?symbol={args.symbols[0]}")
        print("  use it:     LIQTUI_BINANCE_REST_URL=" + sx.rest_url
              + " LIQTUI_BINANCE_WS_URL=" + sx.ws_url)
        print(f"              liqtui levels --symbol {args.symbols[0]} --rest-url {sx.rest_url}")
        print("Ctrl-C stops it.", flush=True)
        await stop.wait()
        await sx.stop()
        return 0

    return asyncio.run(serve())


def _flags(args) -> dict:
    """The option values given on the command line, keyed like the config."""
    app = getattr(args, "command", None) is None
    return {k: getattr(args, o.flag[2:].replace("-", "_"), None) for k, o in OPTIONS.items()
            if app or o.table != "ui"}


def _settings(args):
    """(settings, model params, feed settings) from every layer; raises ConfigError."""
    settings = load_settings(_flags(args), config_path=args.config)
    return settings, settings.model_params(), settings.feed_settings()


def _binance_urls(args) -> tuple[str, str]:
    """REST and WebSocket base URLs: flag > LIQTUI_BINANCE_*_URL > the venue's; validated,
    the error naming where a bad one came from (ValueError)."""
    from .feeds.venues import VENUES

    return VENUES["binance"].urls(getattr(args, "rest_url", None), getattr(args, "ws_url", None))


def cmd_app(args) -> int:
    """The live heatmap (Textual). Textual is imported only after the colour depth is set."""
    import logging
    import time

    started = time.monotonic()

    system = COLOR_SYSTEMS[args.colors]
    if system is not None:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = system
    if os.environ.get("NO_COLOR") == "":  # no-color.org: only a non-empty value; Textual: any
        del os.environ["NO_COLOR"]
    try:
        settings = load_settings(_flags(args), config_path=args.config)
    except ConfigError as e:
        return _error(str(e))
    symbol = (args.symbol or settings.watchlist[0]).strip().upper()
    if not symbol.isalnum():
        return _error(f"--symbol {args.symbol!r} is not accepted, expected a symbol like BTCUSDT")
    from .config import UI_RANGES

    range_name = settings.values.get("range", "24h")
    lookback = settings.values.get("lookback", 30 * 86_400_000)
    if UI_RANGES[range_name] > lookback:
        lookback = UI_RANGES[range_name]
    try:
        urls = _app_urls(args)
    except ValueError as e:
        return _error(str(e))
    rest_url, ws_url = urls["binance"]
    asked = "binance" if args.venue == "all" else args.venue  # the venue to check the symbol with
    try:
        from .ui.keys import keymap

        keys = keymap(settings.keys)
    except ConfigError as e:
        return _error(str(e))

    logger = logging.getLogger("liqtui")
    logger.propagate = False  # nothing may print on the terminal the UI owns
    logger.handlers[:] = [logging.NullHandler()]
    if args.log:
        try:
            handler = logging.FileHandler(args.log, encoding="utf-8")
        except OSError as e:
            return _error(f"--log {args.log}: cannot write ({e.strerror or e})")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)

    build = None
    if args.demo:
        # the first asset's simulated market starts generating now, in a child process, while
        # this one imports numpy and the UI; the app builds the other symbols after the first
        # paint
        from .sim.symbols import CATALOGUE

        if symbol not in CATALOGUE:
            import difflib

            near = difflib.get_close_matches(symbol, list(CATALOGUE), n=1)
            return _error(f"--symbol {symbol}: the simulated exchange does not list it"
                          f"{f' (did you mean {near[0]}?)' if near else ''}; "
                          f"--demo serves {', '.join(sorted(CATALOGUE))}")
        from .sim.child import start_first

        cache = _sim_cache()
        start, build = start_first(symbol, args.demo_seed, args.demo_days, cache)
    try:
        try:  # the model's settings import numpy: checked after the child has started
            params, feed_settings = settings.model_params(), settings.feed_settings()
        except ConfigError as e:
            return _error(str(e))
        first = None
        if build is not None:
            from .sim.market import Market

            first = (Market((), args.demo_seed, start_ms=start, time_scale=args.demo_speed,
                            cache_dir=cache), (symbol, build))

        from .ui.app import AppOptions, LiqApp

        wl = settings.watchlist
        opts = AppOptions(
            symbol=symbol, watchlist=wl if symbol in wl else (symbol, *wl),
            range_name=range_name, lookback_ms=lookback, params=params,
            threshold=settings.threshold, rest_url=rest_url, ws_url=ws_url,
            feed_settings=feed_settings, keymap=keys, demo=args.demo,
            demo_history_days=args.demo_days, demo_time_scale=args.demo_speed,
            demo_seed=args.demo_seed, demo_cache_dir=_sim_cache() if args.demo else None,
            demo_market=first and first[0], demo_first=first and first[1],
            local_time=args.local_time, started=started, venue=args.venue, venue_urls=urls,
            replay=getattr(args, "replay", None))
        if args.demo and lookback > args.demo_days * 86_400_000:
            opts.lookback_ms = int(args.demo_days * 86_400_000)
            if UI_RANGES[range_name] > opts.lookback_ms:
                opts.range_name = "24h" if opts.lookback_ms >= UI_RANGES["24h"] else "12h"
        logger.info("liqtui %s starting: %s %s", __version__,
                    "demo" if args.demo else rest_url, symbol)
        if not args.demo and opts.replay is None:
            unknown = _unknown_symbol(asked, urls[asked][0], symbol, feed_settings)
            if unknown:
                return _error(f"{'--symbol' if args.symbol else 'the first [ui] watchlist entry'}"
                              f": {unknown}")
        opts.store, status = _app_store(args, settings, opts)
        if status is not None:
            return status
        app = LiqApp(opts)
        try:
            app.run()
        finally:
            if opts.store is not None:
                opts.store.close()  # flushes what the app saw live
        return app.return_code or 0  # 1 after a crash (Textual has shown the traceback)
    finally:
        if build is not None:
            build.kill()  # a start that ended early leaves no child behind (else: done already)


def _app_urls(args) -> dict:
    """venue → (REST, WS) base URLs: --rest-url/--ws-url for --venue, env, the venue's own."""
    from .feeds.venues import VENUES

    if args.venue == "all" and (args.rest_url or args.ws_url):
        raise ValueError("--rest-url/--ws-url name one venue's URL; with --venue all set each "
                         "venue's LIQTUI_<VENUE>_REST_URL / _WS_URL in the environment")
    return {name: v.urls(*((args.rest_url, args.ws_url) if name == args.venue else ()))
            for name, v in VENUES.items()}


def _unknown_symbol(venue: str, rest_url: str, symbol: str, feed_settings) -> str | None:
    """Ask the venue once, briefly, whether it lists ``symbol``: the reason if it does not,
    else None. A venue that cannot be reached (or is slow, or limits us) is not a verdict:
    the app starts and shows the feed state."""
    import asyncio
    from dataclasses import replace

    from .feeds import UnknownSymbolError

    quick = replace(feed_settings, rest_retries=0, rest_timeout_s=3.0)

    async def ask() -> None:
        from .feeds.venues import VENUES

        async with VENUES[venue].rest_class()(rest_url, settings=quick) as rest:
            await rest.exchange_info(max_wait=1.0)
            await rest.symbol(symbol)

    try:
        asyncio.run(asyncio.wait_for(ask(), 5.0))
    except UnknownSymbolError as e:
        return str(e)
    except Exception:  # noqa: BLE001 - unreachable, 429, 5xx, timeout: the app says so itself
        return None
    return None


def _error(msg: str) -> int:
    print(f"liqtui: error: {msg}", file=sys.stderr)
    return 2


def _warn(msg: str) -> None:
    print(f"liqtui: warning: {msg}", file=sys.stderr)


class _Exit(Exception):
    """Stop a command with this exit status (the message is already printed)."""

    def __init__(self, status: int):
        self.status = status


def _files_input(args):
    from .dumps import DumpError, load_dumps

    try:
        data = load_dumps(args.klines, args.metrics)
    except DumpError as e:
        raise _Exit(_error(str(e))) from None
    return data.bars, data.symbol, list(data.warnings), None


def _network_input(args):
    """Backfill the lookback over REST (closed 5-minute steps) from the chosen venue."""
    from .feeds import BannedError, UnknownSymbolError
    from .feeds.venues import venue

    v = venue(args.venue)
    try:
        url = v.urls(args.rest_url)[0]
    except ValueError as e:
        raise _Exit(_error(str(e))) from None
    progress = _progress_printer() if sys.stderr.isatty() else None
    try:
        info, bf = _fetch({v.name: url}, args, progress)[v.name]
    except (UnknownSymbolError, ValueError) as e:  # unknown symbol, a malformed URL
        raise _Exit(_error(str(e))) from None
    except BannedError as e:
        print(f"liqtui: error: {e}", file=sys.stderr)
        raise _Exit(1) from None
    except Exception as e:  # RestError, OSError, timeouts, a client missing from this build
        print(f"liqtui: error: {v.name} {_failure(url, e)}", file=sys.stderr)
        raise _Exit(1) from None
    if not len(bf["time"]):
        raise _Exit(_error(f"{info.symbol}: the venue returned no closed bars for the last {args.range}"))
    return bf, info.symbol, list(bf.warnings), info.tick_size


def _all_venues_input(args):
    """Backfill every venue at once; a venue that fails is left out, with its reason.
    Returns ({venue: Backfill or None}, {venue: reason}, tick of the first venue)."""
    from .feeds import UnknownSymbolError
    from .feeds.venues import VENUES

    if args.rest_url:
        raise _Exit(_error("--rest-url names one venue's URL; with --venue all set each "
                           "venue's in the environment: "
                           + ", ".join(v.env_rest for v in VENUES.values())))
    urls, failed = {}, {}
    for name, v in VENUES.items():
        try:
            urls[name] = v.urls()[0]
        except ValueError as e:  # a malformed LIQTUI_<VENUE>_REST_URL
            raise _Exit(_error(str(e))) from None
    progress = _progress_printer() if sys.stderr.isatty() else None
    got = _fetch(urls, args, progress)
    bars, tick = {}, None
    for name, r in got.items():
        if isinstance(r, BaseException):
            bars[name], failed[name] = None, _failure(urls[name], r)
        elif not len(r[1]["time"]):
            bars[name], failed[name] = None, f"no closed bars for the last {args.range}"
        else:
            bars[name] = r[1]
            tick = tick or r[0].tick_size
    if not any(b is not None for b in bars.values()):
        unknown = [r for r in got.values() if isinstance(r, UnknownSymbolError)]
        if len(unknown) == len(got):
            raise _Exit(_error(f"{args.symbol}: no venue lists it ({'; '.join(map(str, unknown))})"))
        for name, why in failed.items():
            print(f"liqtui: error: {name} {why}", file=sys.stderr)
        raise _Exit(1)
    return bars, failed, tick


def _fetch(urls: dict, args, progress) -> dict:
    """venue → (symbol info, Backfill) from each venue's REST at once; with one venue its
    error is raised, with several it is returned in its place."""
    import asyncio

    from .feeds.venues import VENUES

    done: dict[str, tuple] = {}

    def share(name):  # one progress line for every venue
        if progress is None:
            return None

        def step(d, total):
            done[name] = (d, total)
            progress(sum(x[0] for x in done.values()), sum(x[1] or 0 for x in done.values()))
        return step

    async def one(name, url):
        rest = VENUES[name].rest_class()(url)
        try:
            info = await rest.symbol(args.symbol)
            return info, await rest.backfill(info.symbol, lookback_ms=RANGES[args.range],
                                             progress=share(name))
        finally:
            await rest.close()

    async def every():
        out = await asyncio.gather(*(one(n, u) for n, u in urls.items()),
                                   return_exceptions=len(urls) > 1)
        return dict(zip(urls, out))

    try:
        return asyncio.run(every())
    finally:
        if progress is not None:
            progress(None, None)


def _failure(url: str, e: BaseException) -> str:
    """One line saying why a venue gave nothing (to follow the venue's name)."""
    if isinstance(e, (ImportError, AttributeError)):
        return f"no client for this venue in this build ({e})"
    return f"REST at {url}: {e or type(e).__name__}"


def _progress_printer():
    def show(done, total):
        if done is None:
            sys.stderr.write("\r\033[K")
        elif total:
            sys.stderr.write(f"\rbackfilling … {100 * done // total:3d} %")
        sys.stderr.flush()
    return show


def cmd_watch(args) -> int:
    import asyncio

    try:
        settings, params, feed_settings = _settings(args)
        rest_url, ws_url = _binance_urls(args)
    except (ConfigError, ValueError) as e:
        return _error(str(e))
    from .feeds import BannedError, RestError, UnknownSymbolError
    from .watch import Watch

    args.symbol, args.lookback_ms = args.symbol.upper(), RANGES[args.range]
    try:
        watch = Watch(args, params, settings.threshold, rest_url, ws_url, feed_settings)
        return asyncio.run(watch.run())
    except (UnknownSymbolError, ValueError) as e:  # an unknown symbol, a malformed URL
        return _error(str(e))
    except (BannedError, RestError, OSError, asyncio.TimeoutError) as e:
        print(f"liqtui: error: {args.venue} at {rest_url}: {e or type(e).__name__}", file=sys.stderr)
        return 1


def cmd_levels(args) -> int:
    by_files = args.klines is not None or args.metrics is not None
    if by_files and args.symbol:
        return _error("give either --klines/--metrics files or --symbol, not both")
    if by_files and not (args.klines and args.metrics):
        return _error("files need both --klines FILE … and --metrics FILE …")
    if not by_files and not args.symbol:
        return _error("nothing to read: give --symbol SYMBOL (over the network) or "
                      "--klines FILE … --metrics FILE … (data dumps)")
    if by_files and args.venue != "binance":
        return _error(f"--venue {args.venue}: the dump files are Binance's; --venue needs --symbol")
    try:
        settings, params, _ = _settings(args)  # imports numpy; validates across settings
    except ConfigError as e:
        return _error(str(e))

    from .model import build_heatmap
    from .report import levels_document, levels_text

    if args.venue == "all" and args.source == "store":
        return _error("--venue all reads the venues over the network; with --source store "
                      "name one venue")
    every = args.venue == "all" and not by_files
    try:
        if every:
            bars, failed, tick = _all_venues_input(args)
            symbol, warnings = args.symbol.upper(), []
        else:
            bars, symbol, warnings, tick = (_files_input(args) if by_files else _store_input(args)
                                            if args.source == "store" else _network_input(args))
    except _Exit as e:
        return e.status
    if tick and params.tick_size is None and params.bin_width is None:
        params = params.replace(tick_size=tick)
    try:
        if every:
            from .model.venues import build_venues

            hm = build_venues(bars, params, failed=failed)
        else:
            hm = build_heatmap({k: bars[k] for k in bars}, params)
    except ValueError as e:  # e.g. an explicit bin width too fine for the price range
        return _error(f"{settings.sources.get('bin_width', 'settings')}: {e}"
                      if params.bin_width else str(e))
    for w in warnings + list(hm.warnings):
        _warn(w)

    venues = hm.venues if every else (args.venue,)
    if args.json:
        import json

        doc = levels_document(hm, symbol, args.top, venues)
        if every:
            _add_venues(doc, hm, args.top)
        out = json.dumps(doc, indent=2) + "\n"
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        out = _venue_title(levels_text(hm, symbol, args.top, settings.threshold, color=color),
                           venues, every)
        if every:
            out += _venues_text(hm, args.top)
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0


def _add_venues(doc: dict, hm, top: int) -> None:
    """Schema 1 for --venue all: the venues left out, and each level's USD by venue."""
    doc["dropped"] = [{"venue": v, "reason": r} for v, r in hm.dropped.items()]
    for row, lv in zip(doc["levels"], hm.levels(top)):
        row["by_venue"] = {v: round(x, 2) for v, x in hm.level_venues(lv).items()}
    by = hm.usd_by_venue().sum(axis=2)  # (V, 2)
    doc["totals"]["by_venue"] = {v: {"long_usd": round(float(by[i, 0]), 2),
                                     "short_usd": round(float(by[i, 1]), 2)}
                                 for i, v in enumerate(hm.venues)}


def _venue_title(text: str, venues, summed: bool) -> str:
    """The table's first line names the venue(s) the levels come from ("Binance+Bybit+OKX"
    for a sum, even of one venue left)."""
    from .feeds.venues import VENUES

    if not summed and tuple(venues) == ("binance",):  # what the table says already
        return text
    name = ("+".join(VENUES[v].label for v in venues) if summed
            else f"{VENUES[venues[0]].label} {VENUES[venues[0]].market}")
    head, _, rest = text.partition("\n")
    return head.replace(" · Binance USDⓈ-M · ", f" · {name} · ", 1) + "\n" + rest


def _venues_text(hm, top: int) -> str:
    """Each level's USD stacked by venue, and who was left out."""
    from .feeds.venues import VENUES
    from .report import price_decimals, usd

    d = price_decimals(hm.bin_width)
    rows = [("#", "price", *(VENUES[v].label for v in hm.venues))]
    for i, lv in enumerate(hm.levels(top), 1):
        split = hm.level_venues(lv)
        rows.append((str(i), f"{lv.price:,.{d}f}",
                     *(f"{usd(split[v])} {100 * split[v] / lv.usd:3.0f}%" for v in hm.venues)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["", "by venue: each level's USD per venue (prices mapped onto "
             f"{VENUES[hm.reference_venue].label}'s)"]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines += [f"left out: {VENUES[v].label}: {r}" for v, r in hm.dropped.items()]
    return "\n".join(lines) + "\n"


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


# ================================================================ the store: record, store info

STEP_MS = 300_000

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


def _add_store_commands(sub) -> None:
    rc = sub.add_parser(
        "record",
        help="capture symbols into the local store, headless (no TUI)",
        description="Record what the venues send into the local store: each symbol's missing "
        "closed steps are\nbackfilled, then closed steps, open interest, mark prices and realized "
        "liquidations are\nfollowed live. Feed states are printed as plain lines; Ctrl-C or "
        "SIGTERM flushes the store\nand reports what was captured.",
        epilog=RECORD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.set_defaults(handler=cmd_record)
    rc.add_argument("--venue", choices=[*VENUE_NAMES, "all"], default="binance",
                    help="venue, or all of them (default binance)")
    rc.add_argument("--symbols", type=_symbols, metavar="LIST", help="perpetuals, e.g. BTCUSDT,ETHUSDT")
    rc.add_argument("--symbol-file", metavar="FILE",
                    help="more symbols, one a line (# starts a comment)")
    rc.add_argument("--backfill", default="30d", metavar="DURATION",
                    help="history to fetch for a symbol new to the store, up to 30d (default 30d)")
    rc.add_argument("--every", type=_positive_float, default=60.0, metavar="S",
                    help="seconds between status lines (default 60)")
    rc.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                    help="stop after S seconds (default: until Ctrl-C or SIGTERM)")
    rc.add_argument("--rest-url", metavar="URL", help="REST base URL (one venue; env "
                    "LIQTUI_<VENUE>_REST_URL)")
    rc.add_argument("--ws-url", metavar="URL", help="WebSocket base URL (one venue; env "
                    "LIQTUI_<VENUE>_WS_URL)")
    _add_data_dir_args(rc)
    rc.add_argument("--retention", metavar="DURATION",
                    help="prune data older than this, e.g. 90d, or off (default 365d; env "
                         "LIQTUI_RETENTION, [store] retention)")
    d = rc.add_argument_group("--demo: the simulated exchange, in-process")
    d.add_argument("--demo", action="store_true", help="record from the simulated exchange")
    d.add_argument("--demo-days", type=_positive_float, default=1.0, metavar="D",
                   help="days of simulated history (default 1)")
    d.add_argument("--demo-speed", type=_positive_float, default=1.0, metavar="X",
                   help="simulated seconds per real second (default 1)")
    d.add_argument("--demo-seed", type=int, default=1, metavar="N", help="market seed")

    st = sub.add_parser("store", help="the local store: what it holds",
                        description="The local store of captured data.")
    ss = st.add_subparsers(dest="store_command", title="commands", metavar="COMMAND",
                           required=True)
    info = ss.add_parser(
        "info", help="per venue and symbol: bars, open-interest points, liquidations, span",
        description="What the store holds, per venue and symbol, and how big it is.")
    info.set_defaults(handler=cmd_store_info)
    info.add_argument("--json", action="store_true",
                      help='a JSON document: {"path", "bytes", "series": [{"venue", "symbol", '
                           '"bars", "open_interest", "liquidations", "first", "last"}…]} '
                           "(times in ms)")
    _add_data_dir_args(info)
    _add_replay_command(sub)


DATA_DIR_HELP = "store directory (default $XDG_DATA_HOME/liqtui; env LIQTUI_DATA_DIR)"


def _add_data_dir_args(p) -> None:
    p.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument("--config", metavar="FILE", help="config file (TOML)")


def _add_levels_store_args(lv) -> None:
    s = lv.add_argument_group("input: the local store (instead of the network)")
    s.add_argument("--source", choices=("network", "store"), default="network",
                   help="with --symbol: fetch over the network, or read what liqtui record "
                        "stored (default network)")
    s.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)


def _read_symbol_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ValueError(f"--symbol-file {path}: cannot read ({e.strerror or e})") from None
    out = []
    for n, line in enumerate(lines, 1):
        for word in line.split("#")[0].replace(",", " ").split():
            if not word.isalnum():
                raise ValueError(f"--symbol-file {path}, line {n}: {word!r} is not accepted, "
                                 "expected symbols like BTCUSDT, one a line")
            out.append(word.upper())
    return out


def _record_targets(args, symbols, Target) -> list:
    """One ``Target`` per venue asked for whose clients this build has (ValueError if none)."""
    from .feeds.venues import venues

    targets, missing = [], []
    for v in venues(args.venue):
        try:
            rest_cls, live_cls = v.rest_class(), v.live_class()
        except (ImportError, AttributeError):
            missing.append(v.name)
            continue
        urls = ("", "") if args.demo else v.urls(args.rest_url, args.ws_url)
        targets.append(Target(v.name, rest_cls, live_cls, *urls, list(symbols)))
    if missing and not targets:
        raise ValueError(f"--venue {args.venue}: not available in this build of liqtui")
    for name in missing:
        _warn(f"{name}: not available in this build of liqtui; not recorded")
    return targets


def cmd_record(args) -> int:
    import asyncio

    from .config import parse_duration

    try:
        backfill_ms = parse_duration(args.backfill)
    except ValueError:
        backfill_ms = 0
    if not STEP_MS <= backfill_ms <= 30 * 86_400_000:
        return _error(f"--backfill {args.backfill!r} is not accepted, expected a duration from "
                      "5m to 30d, e.g. 7d")
    try:
        settings, _, feed_settings = _settings(args)
        symbols = list(args.symbols or ())
        if args.symbol_file:
            symbols += _read_symbol_file(args.symbol_file)
    except (ConfigError, ValueError) as e:  # a bad setting, an unreadable symbol file
        return _error(str(e))
    symbols = list(dict.fromkeys(symbols))
    if not symbols:
        return _error("nothing to record: give --symbols A,B or --symbol-file FILE")
    if (args.rest_url or args.ws_url) and (args.venue == "all" or args.demo):
        return _error("--rest-url/--ws-url are one venue's URLs: give --venue NAME (not all), "
                      "without --demo")
    from .record import Recorder, Target, validate
    from .store import Store, StoreError
    from .store import check as check_store

    try:
        targets = _record_targets(args, symbols, Target)
    except ValueError as e:
        return _error(str(e))
    path = settings.store_path()
    own = args.demo and "data_dir" not in settings.values
    if own:
        path = path.parent / "demo" / path.name  # simulated data never mixes with captures
    try:
        check_store(path, create=True)  # refuse a bad file before building the demo
    except StoreError as e:
        return _error(str(e))
    market = None
    if args.demo:  # built before any thread starts: a cold build forks worker processes
        from .sim.market import CATALOGUE, Market

        unknown = [s for s in symbols if s not in CATALOGUE]
        if unknown:
            return _error(f"--symbols {','.join(unknown)}: the simulated exchange does not list "
                          f"{'it' if len(unknown) == 1 else 'them'}; --demo serves "
                          f"{', '.join(sorted(CATALOGUE))}")
        try:
            market = Market(symbols, args.demo_seed, history_days=args.demo_days,
                            time_scale=args.demo_speed, cache_dir=_sim_cache())
        except ValueError as e:
            return _error(str(e))
    try:
        store = Store(path, retention_days=settings.retention_days,
                      kind="simulated" if args.demo else "real",
                      unmarked="simulated" if own else "real")
    except StoreError as e:  # StoreKindError too: the other kind of data there (exit 2)
        return _error(str(e))

    async def main() -> int:
        demo = None
        if market is not None:
            from .ui.demo import Demo

            demo = Demo(symbols, market=market)
            await demo.start()
            print(f"simulated exchange: {demo.exchange.rest_url} · {demo.exchange.ws_url}",
                  flush=True)
            for t in targets:
                t.rest_url, t.ws_url = demo.exchange.rest_url, demo.exchange.ws_url
        try:
            unknown = await validate(targets, feed_settings)
            if unknown:
                return _error(f"--symbols: {', '.join(unknown)}: not listed by "
                              f"{' or '.join(t.venue for t in targets)} (perpetuals only)")
            live = [t for t in targets if t.symbols]
            rec = Recorder(store, live, settings=feed_settings, backfill_ms=backfill_ms,
                           every=args.every, duration=args.duration)
            return await rec.run()
        finally:
            if demo is not None:
                await demo.stop()

    try:
        return asyncio.run(main())
    finally:
        store.close()


def _open_store_readonly(args):
    from .store import Store, StoreError

    try:
        settings = load_settings(_flags(args), config_path=args.config)
        return Store(settings.store_path(), readonly=True)
    except (ConfigError, StoreError) as e:
        raise _Exit(_error(str(e))) from None


def cmd_store_info(args) -> int:
    try:
        store = _open_store_readonly(args)
    except _Exit as e:
        return e.status
    with store:
        info = store.info()
    if args.json:
        import json

        print(json.dumps(info, indent=2))
        return 0
    from .report import utc

    if store.missing:
        print(f"no store at {info['path']} yet (liqtui record creates it)")
        return 0
    size = info["bytes"]
    print(f"store {info['path']} · " + (f"{size / 1e6:,.1f} MB" if size >= 1e6 else
                                        f"{size / 1e3:,.0f} kB")
          + f" · {info['kind'] or 'empty'}")
    rows = [("venue", "symbol", "bars", "open interest", "liquidations", "first", "last")]
    for s in info["series"]:
        rows.append((s["venue"], s["symbol"], f"{s['bars']:,}", f"{s['open_interest']:,}",
                     f"{s['liquidations']:,}", utc(s["first"]) if s["first"] else "-",
                     utc(s["last"]) if s["last"] else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.rjust(w) if 2 <= i <= 4 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0


def _store_input(args):
    """The lookback's closed steps from the store, ending at the newest stored step."""
    store = _open_store_readonly(args)
    sym = args.symbol.upper()
    with store:
        last = store.last_step(args.venue, sym)
        if last is None:
            raise _Exit(_error(f"{args.venue} {sym}: nothing stored in {store.path}; record it "
                               f"first: liqtui record --venue {args.venue} --symbols {sym}"))
        end = last + STEP_MS
        bars = store.steps(args.venue, sym, end - RANGES[args.range], end)
        tick = store.tick_size(args.venue, sym)
    return bars, sym, [], tick


# ================================================================ the store in the app, replay


def _add_app_store_args(parser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP + "; the app paints "
                        "from the store at once and keeps what it sees live there")


def _add_replay_command(sub) -> None:
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
    rp.add_argument("--speed", type=_positive_float, default=1.0, metavar="N",
                    help="replayed seconds per real second (default 1; . and , in the app)")
    rp.add_argument("--range", metavar="RANGE", help="displayed range: 12h, 24h, 3d, 7d, 30d")
    rp.add_argument("--lookback", metavar="DURATION",
                    help="what the model runs over before the start, up to 30d (default 30d)")
    rp.add_argument("--colors", choices=list(COLOR_SYSTEMS), default="auto",
                    help="colour depth (default auto; NO_COLOR is honoured)")
    rp.add_argument("--local-time", action="store_true", help="time axis in local time")
    rp.add_argument("--log", metavar="FILE", help="write what the replay does to FILE")
    _add_data_dir_args(rp)
    _add_model_args(rp)


def _parse_time(text: str, what: str) -> int:
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


def _app_store(args, settings, opts):
    """(the app's store or None, an exit status or None). A replay needs the store; the live
    app runs without one it cannot use (a warning says why); --demo keeps nothing."""
    from .store import Store, StoreError

    if args.demo:
        return None, None
    path = settings.store_path()
    try:
        if opts.replay is not None:
            return Store(path, readonly=True), None
        return Store(path, retention_days=settings.retention_days), None
    except StoreError as e:
        if opts.replay is not None:
            return None, _error(str(e))
        _warn(f"{e}; running without the store")
        return None, None


def cmd_replay(args) -> int:
    from .store import Store, StoreError
    from .ui.controller import ReplaySpec

    try:
        start = _parse_time(args.replay_from, "--from")
        end = _parse_time(args.replay_to, "--to")
        settings = load_settings(_flags(args), config_path=args.config)
    except (ValueError, ConfigError) as e:
        return _error(str(e))
    if end <= start:
        return _error(f"--to {args.replay_to!r} must be after --from {args.replay_from!r}")
    symbol = args.symbol.strip().upper()
    try:
        with Store(settings.store_path(), readonly=True) as st:
            n = len(st.steps("binance", symbol, start, end)["time"])
            if st.missing or not (n or len(st.marks("binance", symbol, start, end)["time"])):
                return _error(f"binance {symbol}: nothing stored between {args.replay_from} and "
                              f"{args.replay_to} in {st.path}; see liqtui store info")
    except StoreError as e:
        return _error(str(e))
    # the app, with the replay as its feed: its options are the app's (no venue, no demo)
    args.command, args.demo, args.watchlist = None, False, symbol
    args.rest_url = args.ws_url = None
    args.demo_days, args.demo_speed, args.demo_seed = 1.0, 1.0, 1
    args.replay = ReplaySpec(start, end, args.speed)
    return cmd_app(args)
