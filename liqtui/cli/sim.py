"""``liqtui sim``: the simulated exchange on loopback (every venue's protocol)."""

from __future__ import annotations

import argparse

from ..feeds.venues import VENUES
from ..units import and_list
from .options import error, port_number, positive_float, sim_cache, symbol_list


def add_parser(sub) -> None:
    sm = sub.add_parser(
        "sim",
        help="run the simulated exchange (every venue's protocol on loopback: "
        + ", ".join(v.label for v in VENUES.values()) + ")",
        description="Run the simulated exchange: a market of leveraged traders served over "
        "the REST and\nWebSocket protocols of " + and_list(f"{v.label} {v.market}" for v in VENUES.values())
        + ",\nall on one loopback port, for demos, tests and benchmarks. "
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
    sm.add_argument("--port", type=port_number, default=0, help="port (default: any free port)")
    sm.add_argument("--seed", type=int, default=1, help="market seed (default 1)")
    sm.add_argument("--symbols", type=symbol_list, default=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                    metavar="LIST", help="symbols (default BTCUSDT,ETHUSDT,SOLUSDT)")
    sm.add_argument("--time-scale", type=positive_float, default=1.0, metavar="X",
                    help="simulated seconds per real second (default 1)")
    sm.add_argument("--history-days", type=positive_float, default=31.0, metavar="D",
                    help="days of past market to generate (default 31)")
    sm.add_argument("--regime", default="mixed", metavar="NAME", help="market regime (default mixed)")
    sm.add_argument("--faults", default="", metavar="SPEC", help="faults to inject (see below)")
    sm.add_argument("--fidelity", action="store_true",
                    help="score the model against the simulated traders' true map and exit")

def _parse_faults(spec: str):
    """'name=value,…' → Faults, each value converted to its field's type."""
    from dataclasses import fields

    from ..sim.faults import Faults

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
        try:
            faults.update(**{name: value})  # the field's own rules too (a rate is at most 1)
        except ValueError as e:
            raise ValueError(f"--faults: {e}") from None
    return faults


def cmd_sim(args) -> int:
    import asyncio
    import signal

    from ..sim.market import sim_workers

    try:
        faults = _parse_faults(args.faults)
        sim_workers()  # a bad LIQTUI_SIM_WORKERS is said now, not deep in a build
    except ValueError as e:
        return error(str(e))
    if args.fidelity:
        from ..sim.fidelity import fidelity_report, format_fidelity

        print(format_fidelity(fidelity_report()))
        return 0
    from ..sim.market import Market
    from ..sim.server import SimExchange

    try:
        market = Market(args.symbols, args.seed, history_days=args.history_days,
                        time_scale=args.time_scale, regime=args.regime, cache_dir=sim_cache())
    except ValueError as e:
        return error(str(e))

    async def serve() -> int:
        sx = SimExchange(market, faults)
        try:
            await sx.start(args.host, args.port)
        except OSError as e:
            return error(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"liqtui sim: {', '.join(args.symbols)} · seed {args.seed} · time ×{args.time_scale:g}"
              f"{' · faults ' + args.faults if args.faults else ''}")
        print(f"  REST        {sx.rest_url}/fapi/v1/exchangeInfo")
        print(f"  WebSocket   {sx.ws_url}/market/stream?streams={args.symbols[0].lower()}@aggTrade")
        print(f"  truth       {sx.rest_url}/sim/truth?symbol={args.symbols[0]}")
        binance = VENUES["binance"]  # the protocol this server speaks
        print(f"  use it:     {binance.env_rest}=" + sx.rest_url
              + f" {binance.env_ws}=" + sx.ws_url)
        print(f"              liqtui levels --symbol {args.symbols[0]} --rest-url {sx.rest_url}")
        print("Ctrl-C stops it.", flush=True)
        await stop.wait()
        await sx.stop()
        return 0

    return asyncio.run(serve())
