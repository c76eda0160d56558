"""Replay mode: pre-rendered Binance frames streamed at full speed, for ingest benchmarks.

``render_frames`` builds a busy market's traffic once (80 % aggTrade, 10 % kline_1m, 10 %
markPrice@1s over BTC, ETH and SOL; unique, increasing aggregate ids; klines consistent with the
trades; the same shapes, key order and string formatting as the live server), and ``push``
writes them to a WebSocket in a tight loop. Rendering is kept out of the timed part: the server
caches the frames per count, and the Binance protocol's ``prepare_replay`` (``liqtui.sim.binance``)
renders them ahead of a run.
"""

from __future__ import annotations

import asyncio

import numpy as np

MAX_COUNT = 2_000_000       # per connection; ~300 MB of frames per million

# symbol, start price, price decimals, qty decimals, typical trade size (base)
SYMBOLS = (
    ("BTCUSDT", 65_000.0, 2, 3, 0.05),
    ("ETHUSDT", 3_200.0, 2, 3, 0.8),
    ("SOLUSDT", 150.0, 4, 2, 12.0),
)
MIX = (0.8, 0.1, 0.1)          # aggTrade, kline_1m, markPrice@1s
START_MS = 1_790_000_000_000   # an arbitrary 2026 instant
STEP_MS = 2                    # ~500 messages per second of exchange time, a busy market
FUNDING_EVERY = 8 * 3_600_000

_AGG = ('{"e":"aggTrade","E":%d,"a":%d,"s":"%s","p":"%s","q":"%s","nq":"%s","f":%d,"l":%d,'
        '"T":%d,"m":%s}')
_KLINE = ('{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s","i":"1m","f":%d,"L":%d,'
          '"o":"%s","c":"%s","h":"%s","l":"%s","v":"%s","n":%d,"x":%s,"q":"%s","V":"%s",'
          '"Q":"%s","B":"0"}}')
_MARK = ('{"e":"markPriceUpdate","E":%d,"s":"%s","p":"%.8f","i":"%.8f","P":"%.8f","r":"%.8f",'
         '"T":%d}')


def render_frames(count: int, *, seed: int = 1, combined: bool = True) -> list[str]:
    """``count`` text frames of a busy market, in exchange-time order."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=count, p=MIX)
    syms = rng.integers(0, len(SYMBOLS), size=count)
    moves = rng.normal(0.0, 0.00015, size=count)       # per-frame log-return
    sizes = rng.gamma(0.6, 1.0, size=count)            # heavy-ish tailed trade sizes
    buys = rng.random(count) < 0.5
    times = START_MS + STEP_MS * np.arange(count, dtype=np.int64)

    state = []
    for i, (sym, price, pp, qp, size) in enumerate(SYMBOLS):
        state.append({
            "sym": sym, "low": sym.lower(), "price": price, "pp": pp, "qp": qp, "size": size,
            "agg": 400_000_000 + i * 10_000_000, "tid": 900_000_000 + i * 10_000_000,
            "bar": None,
        })
    out: list[str] = []
    append = out.append
    for n in range(count):
        st = state[syms[n]]
        t = int(times[n])
        sym, pp, qp = st["sym"], st["pp"], st["qp"]
        bar_t = t - t % 60_000
        bar = st["bar"]
        if bar is None or bar[0] != bar_t:
            # a new minute: [t, o, h, l, c, v, qv, n, taker_v, taker_qv, first, last]
            p0 = st["price"]
            bar = st["bar"] = [bar_t, p0, p0, p0, p0, 0.0, 0.0, 0, 0.0, 0.0, st["tid"] + 1,
                               st["tid"]]
        kind = kinds[n]
        if kind == 0:
            price = st["price"] = st["price"] * (1.0 + moves[n])
            qty = max(round(st["size"] * sizes[n], qp), 10.0 ** -qp)
            st["agg"] += 1
            st["tid"] += 1
            p, q = f"{price:.{pp}f}", f"{qty:.{qp}f}"
            buy = bool(buys[n])
            bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
            bar[5] += qty
            bar[6] += qty * price
            bar[7] += 1
            bar[11] = st["tid"]
            if buy:
                bar[8] += qty
                bar[9] += qty * price
            payload = _AGG % (t + 5, st["agg"], sym, p, q, q, st["tid"], st["tid"], t,
                              "false" if buy else "true")
            stream = st["low"] + "@aggTrade"
        elif kind == 1:
            qq = pp + qp
            first, last = (bar[10], bar[11]) if bar[7] else (-1, -1)
            payload = _KLINE % (t, sym, bar[0], bar[0] + 59_999, sym, first, last,
                                f"{bar[1]:.{pp}f}", f"{bar[4]:.{pp}f}", f"{bar[2]:.{pp}f}",
                                f"{bar[3]:.{pp}f}", f"{bar[5]:.{qp}f}", bar[7], "false",
                                f"{bar[6]:.{qq}f}", f"{bar[8]:.{qp}f}", f"{bar[9]:.{qq}f}")
            stream = st["low"] + "@kline_1m"
        else:
            mark = st["price"] * (1.0 + moves[n] * 0.1)
            index = st["price"]
            payload = _MARK % (t, sym, mark, index, index, 0.0001,
                               (t // FUNDING_EVERY + 1) * FUNDING_EVERY)
            stream = st["low"] + "@markPrice@1s"
        append('{"stream":"%s","data":%s}' % (stream, payload) if combined else payload)
    return out


async def push(ws, frames: list[str], yield_every: int = 1024) -> None:
    """Send pre-encoded frames as fast as the socket takes them.

    ``send_str`` writes straight into the transport and only awaits when the transport's
    buffer is over its high-water mark (backpressure); the periodic ``sleep(0)`` lets other
    tasks (the live pump, other sockets) run during a long replay.
    """
    send = ws.send_str
    for i, frame in enumerate(frames):
        await send(frame)
        if i % yield_every == yield_every - 1:
            await asyncio.sleep(0)
