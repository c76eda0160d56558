"""Live events of one simulated minute, rendered from the engine's one-second path.

The engine decides a minute's candle (open = previous close, high, low, close from the 61 path
points), its volume, taker-buy volume, trade count and liquidations; rendering only lays
individual trades on top so that they add up to exactly that: the first trade of every second
is at that second's path point, the others lie between it and the next point (so they never
leave [low, high]), the minute's last trade is at the close, and quantities are integer
splits of the minute's volume in lot steps. A minute renders the same way every time (its
own random stream), so REST and WebSocket agree whenever they are asked.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..units import MINUTE as MIN
KLINE_EVERY = 500  # ms between kline updates of the forming bar
_TRADE, _LIQ, _MARK, _KLINE = 0, 1, 2, 3


def _split(rng, total: int, parts: int) -> np.ndarray:
    """``total`` lot steps split into ``parts`` positive integers."""
    if parts == 0:
        return np.zeros(0, np.int64)
    w = rng.exponential(size=parts)
    out = 1 + np.floor(w / w.sum() * (total - parts)).astype(np.int64)
    out[: total - int(out.sum())] += 1
    return out


class Rendered:
    """Trades, marks, liquidations and kline updates of one minute, sorted by time."""

    def __init__(self, eng, k: int, symbol: str):
        rec = eng.recent[k]
        self.symbol, self.k, self.t0 = symbol, k, k * MIN
        self.step, self.tick = eng.step, eng.tick
        t0 = self.t0
        rng = np.random.default_rng([eng.seed, zlib.crc32(symbol.encode()), k, 7])
        full = rec["path"]
        self.path = full
        n_other = rec["n_other"]
        liq = rec["liq"]

        # other trades: at least one per second (at its path point), two in the last second
        counts = np.ones(60, np.int64)
        counts[59] += 1
        counts += rng.multinomial(n_other - 61, np.full(60, 1 / 60))
        sec = np.repeat(np.arange(60), counts)
        first = np.cumsum(counts) - counts
        rank = np.arange(n_other) - first[sec]
        c = counts[sec]
        offs = ((rank + rng.random(n_other)) / c * 998).astype(np.int64)
        frac = np.where(sec == 59, rank / np.maximum(c - 1, 1), rank / c)
        price = eng._round(full[sec] + (full[sec + 1] - full[sec]) * frac)
        times = t0 + 1000 * sec + offs

        if liq is not None:
            l_units, l_buy = liq["units"], liq["side"] == 1  # a short's liquidation buys
        else:
            l_units, l_buy = np.zeros(0, np.int64), np.zeros(0, bool)
        buy_u = rec["taker"] - int(l_units[l_buy].sum())
        sell_u = rec["volume"] - rec["taker"] - int(l_units[~l_buy].sum())
        tot = buy_u + sell_u
        nb = int(round(n_other * buy_u / tot)) if tot else 0
        nb = min(max(nb, (1 if buy_u > 0 else 0), n_other - sell_u),
                 buy_u, n_other - (1 if sell_u > 0 else 0))
        is_buy = np.zeros(n_other, bool)
        is_buy[rng.permutation(n_other)[:nb]] = True
        units = np.empty(n_other, np.int64)
        units[is_buy] = _split(rng, buy_u, nb)
        units[~is_buy] = _split(rng, sell_u, n_other - nb)

        if liq is not None and liq["time"].size:
            times = np.concatenate([times, liq["time"]])
            price = np.concatenate([price, liq["avg"]])
            units = np.concatenate([units, l_units])
            is_buy = np.concatenate([is_buy, l_buy])
            o = np.argsort(times, kind="stable")
            times, price, units, is_buy = times[o], price[o], units[o], is_buy[o]
        self.t, self.price, self.units, self.buy = times, price, units, is_buy
        self.ids = rec["first_id"] + np.arange(times.size)
        q = price * units * self.step
        qb = np.where(is_buy, q, 0.0)
        # the engine's quote volume is the reference; trades carry it in proportion
        self.cum_quote = np.cumsum(q) * (rec["quote"] / q.sum())
        self.cum_tb_quote = np.cumsum(qb) * (rec["tb_quote"] / qb.sum() if qb.sum() else 0.0)
        self.cum_units = np.cumsum(units)
        self.cum_tb_units = np.cumsum(np.where(is_buy, units, 0))
        self.run_hi = np.maximum.accumulate(price)
        self.run_lo = np.minimum.accumulate(price)
        self.rec = rec

        self.mark_t = t0 + 1000 * np.arange(60) + 999
        self.mark, self.index = rec["mark"], rec["index"]
        self.liq = liq
        kl_t = t0 + KLINE_EVERY - 1 + KLINE_EVERY * np.arange(MIN // KLINE_EVERY)
        nl = 0 if liq is None else liq["time"].size
        ev_t = np.concatenate([times, liq["time"] if nl else np.zeros(0, np.int64), self.mark_t, kl_t])
        kind = np.concatenate([np.full(times.size, _TRADE), np.full(nl, _LIQ),
                               np.full(60, _MARK), np.full(kl_t.size, _KLINE)])
        ref = np.concatenate([np.arange(times.size), np.arange(nl), np.arange(60), np.arange(kl_t.size)])
        o = np.lexsort((kind, ev_t))
        self.ev_t, self.ev_kind, self.ev_ref = ev_t[o], kind[o], ref[o]
        self.kl_t = kl_t
        self.closed_row = None

    def row(self, tau: int) -> list:
        """The 1-minute kline as of time ``tau`` (trades at or before it)."""
        c = int(np.searchsorted(self.t, tau, side="right"))
        t0, step = self.t0, self.step
        if c == 0:
            p0 = float(self.path[0])
            return [t0, p0, p0, p0, p0, 0.0, t0 + MIN - 1, 0.0, 0, 0.0, 0.0]
        j = c - 1
        return [t0, float(self.price[0]), float(self.run_hi[j]), float(self.run_lo[j]),
                float(self.price[j]), float(self.cum_units[j] * step), t0 + MIN - 1,
                float(self.cum_quote[j]), c, float(self.cum_tb_units[j] * step),
                float(self.cum_tb_quote[j])]

    def mark_row(self, tau: int, prev_mark: float) -> list:
        c = int(np.searchsorted(self.mark_t, tau, side="right"))
        t0 = self.t0
        if c == 0:
            p = prev_mark
            return [t0, p, p, p, p, 0.0, t0 + MIN - 1, 0.0, 0, 0.0, 0.0]
        m = self.mark[:c]
        return [t0, float(m[0]), float(m.max()), float(m.min()), float(m[-1]), 0.0,
                t0 + MIN - 1, 0.0, c, 0.0, 0.0]

    def last_mark(self, tau: int):
        c = int(np.searchsorted(self.mark_t, tau, side="right"))
        if c == 0:
            return None
        return float(self.mark[c - 1]), float(self.index[c - 1]), int(self.mark_t[c - 1])

    def events(self, after: int, upto: int, closed_row) -> list:
        """Events with ``after`` < time ≤ ``upto`` as tuples (see docs/sim-and-feeds.md)."""
        lo = int(np.searchsorted(self.ev_t, after, side="right"))
        hi = int(np.searchsorted(self.ev_t, upto, side="right"))
        out = []
        sym, step = self.symbol, self.step
        for t, kind, ref in zip(self.ev_t[lo:hi].tolist(), self.ev_kind[lo:hi].tolist(),
                                self.ev_ref[lo:hi].tolist()):
            if kind == _TRADE:
                out.append(("trade", sym, t, int(self.ids[ref]), float(self.price[ref]),
                            float(self.units[ref] * step), bool(self.buy[ref])))
            elif kind == _MARK:
                out.append(("mark", sym, t, float(self.mark[ref]), float(self.index[ref])))
            elif kind == _LIQ:
                lq = self.liq
                out.append(("liquidation", sym, t, "SELL" if lq["side"][ref] == 0 else "BUY",
                            float(lq["units"][ref] * step), float(lq["bk"][ref]),
                            float(lq["avg"][ref])))
            else:
                closed = ref == self.kl_t.size - 1
                out.append(("kline", sym, t, closed_row if closed else self.row(t), closed))
        return out
