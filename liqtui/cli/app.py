"""The default command: the live heatmap (Textual), ``--demo`` against the simulated exchange,
and the app a replay runs in. Textual is imported only after the colour depth is set."""

from __future__ import annotations

import errno
import os

from .. import __version__
from ..config import UI_RANGES, ConfigError, load_settings
from ..feeds.venues import VENUES
from ..units import DAY
from .options import (COLOR_SYSTEMS, LogFormatter, error, flag_values, private_log, sim_cache,
                      venue_urls, warn)

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


def _app_store(args, settings, opts):
    """(the app's store or None, an exit status or None). A replay needs the store; the live
    app runs without one it cannot use (a warning says why); --demo keeps nothing."""
    from ..store import Store, StoreError

    if args.demo:
        return None, None
    path = settings.store_path()
    try:
        if opts.replay is not None:
            return Store(path, readonly=True), None
        return Store(path, retention_days=settings.retention_days), None
    except StoreError as e:
        if opts.replay is not None:
            return None, error(str(e))
        warn(f"{e}; running without the store")
        return None, None
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
        settings = load_settings(flag_values(args), config_path=args.config)
    except ConfigError as e:
        return error(str(e))
    symbol = (args.symbol or settings.watchlist[0]).strip().upper()
    if not symbol.isalnum():
        return error(f"--symbol {args.symbol!r} is not accepted, expected a symbol like BTCUSDT")
    range_name = settings.values.get("range", "24h")
    lookback = settings.values.get("lookback", 30 * DAY)
    if UI_RANGES[range_name] > lookback:
        lookback = UI_RANGES[range_name]
    try:
        urls = venue_urls(args, VENUES)
    except ValueError as e:
        return error(str(e))
    rest_url, ws_url = urls["binance"]
    asked = "binance" if args.venue == "all" else args.venue  # the venue to check the symbol with
    try:
        from ..ui.keys import keymap

        keys = keymap(settings.keys)
    except ValueError as e:  # a bad [keys] entry (KeymapError)
        return error(str(e))

    logger = logging.getLogger("liqtui")
    logger.propagate = False  # nothing may print on the terminal the UI owns
    logger.handlers[:] = [logging.NullHandler()]
    if args.log:
        try:
            handler = logging.StreamHandler(private_log(args.log))
        except OSError as e:
            why = ("a symbolic link (not followed: it could point anywhere)"
                   if e.errno == errno.ELOOP else f"cannot write ({e.strerror or e})")
            return error(f"--log {args.log}: {why}")
        handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)

    build = None
    if args.demo:
        # the first asset's simulated market starts generating now, in a child process, while
        # this one imports numpy and the UI; the app builds the other symbols after the first
        # paint
        from ..sim.symbols import CATALOGUE

        if symbol not in CATALOGUE:
            import difflib

            near = difflib.get_close_matches(symbol, list(CATALOGUE), n=1)
            return error(f"--symbol {symbol}: the simulated exchange does not list it"
                          f"{f' (did you mean {near[0]}?)' if near else ''}; "
                          f"--demo serves {', '.join(sorted(CATALOGUE))}")
        from ..sim.child import start_first

        cache = sim_cache()
        start, build = start_first(symbol, args.demo_seed, args.demo_days, cache)
    try:
        try:  # the model's settings import numpy: checked after the child has started
            params, feed_settings = settings.model_params(), settings.feed_settings()
        except ConfigError as e:
            return error(str(e))
        first = None
        if build is not None:
            from ..sim.market import Market

            first = (Market((), args.demo_seed, start_ms=start, time_scale=args.demo_speed,
                            cache_dir=cache), (symbol, build))

        from ..ui.app import AppOptions, LiqApp

        wl = settings.watchlist
        opts = AppOptions(
            symbol=symbol, watchlist=wl if symbol in wl else (symbol, *wl),
            range_name=range_name, lookback_ms=lookback, params=params,
            threshold=settings.threshold, rest_url=rest_url, ws_url=ws_url,
            feed_settings=feed_settings, keymap=keys, demo=args.demo,
            demo_history_days=args.demo_days, demo_time_scale=args.demo_speed,
            demo_seed=args.demo_seed, demo_cache_dir=sim_cache() if args.demo else None,
            demo_market=first and first[0], demo_first=first and first[1],
            local_time=args.local_time, started=started, venue=args.venue, venue_urls=urls,
            replay=getattr(args, "replay", None))
        if args.demo and lookback > args.demo_days * DAY:
            opts.lookback_ms = int(args.demo_days * DAY)
            if UI_RANGES[range_name] > opts.lookback_ms:
                opts.range_name = "24h" if opts.lookback_ms >= UI_RANGES["24h"] else "12h"
        logger.info("liqtui %s starting: %s %s", __version__,
                    "demo" if args.demo else rest_url, symbol)
        if not args.demo and opts.replay is None:
            from ..session.inputs import unknown_symbol

            unknown = unknown_symbol(asked, urls[asked][0], symbol, feed_settings)
            if unknown:
                return error(f"{'--symbol' if args.symbol else 'the first [ui] watchlist entry'}"
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
