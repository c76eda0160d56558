"""One symbol's simulated market, advanced one minute at a time.

Each minute:

1. **Exogenous path.** The *index* (spot) moves along 60 one-second log increments: drift
   from a trend regime (down / flat / up, Markov), volatility = base × a GARCH(1,1) factor
   (fed by the exogenous move plus half the flow impact, so cascades raise volatility for a
   while) × a quiet/normal/excited regime (Markov, hours) × a daily cycle, noise traders, rare
   jumps, and a weak pull toward the starting level (half-life 10 days) so a month stays at
   realistic prices.
2. **Flow impact.** The perpetual trades at index × exp(deviation). New positions (see
   ``traders.py``) and planned closes are worked patiently: small linear impact. Stops and
   liquidations are market orders that sweep the book: square-root impact (1 % of the OI
   scale moves price ~0.15 %, 25× more moves it 5× more, so cascades run out), thinner when
   volatility is high. Within the minute part of the impact fades over ~20 s; across minutes
   the deviation decays (half-life 15 min: arbitrage), 20 % passing to the index for good.
3. **Cascade.** Mark = last × a small mean-reverting basis. Every position whose liquidation
   price the mark path crosses is force-closed at the second it is crossed, every stop the
   last-price path crosses fires, and take-profits it reaches fill (resting orders: no
   impact); the path is recomputed with the new forced flow and checked again until nothing
   more fires. Cascades are consequences of where positions sit, never scripted.
4. **Book-keeping.** New positions enter at the price they traded at (the path after their
   own impact), with their isolated-margin liquidation price from the bracket table for their
   own notional; they can be liquidated from the next minute on. Open interest, volume,
   taker-buy volume and the candle follow from all of the above.

Open interest (base units) = max(Σ trader longs, Σ trader shorts) + H. Our traders trade
against market makers who net their inventory, so the number of open contracts is the larger
side; H is a slowly varying book of delta-neutral basis trades (perp against spot, never
liquidated, ~25 % of the scale) that LQ-1 cannot tell apart from leveraged positions.

Randomness is drawn per hour from a stream named by (seed, symbol, regime, hour), and per
position from numbered pools (``traders.draw_pool``), so the state needed to continue a run is
just arrays and a few numbers (``state()`` / ``load()``, used by the cache).
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass

import numpy as np

from ..model.liqprice import bracket_table
from . import traders
from .symbols import ENGINE_VERSION
from .triggers import TriggerBook

from ..units import MINUTE as MIN
DAY_MIN = 1440
COMPACT_EVERY = 720           # minutes (aligned to UTC): drop closed positions from the arrays
RECENT_MINUTES = 360          # minutes of intra-minute paths kept for rendering live events
MAX_CASCADE = 40

# impact kernel over the seconds after a market order: 60 % stays, the rest fades over ~20 s
KERNEL = 0.6 + 0.4 * np.exp(-np.arange(60) / 20.0)
IMPACT_1PCT = 0.0015  # forced orders (stops, liquidations) sweep the book: log impact of
                      # 1 % of the OI scale at once, square-root law beyond (a cascade 25×
                      # bigger moves price 5×, so cascades run out)
ROUTINE = 0.03        # opens and planned closes are worked patiently: linear, small (log
                      # impact of trading the whole OI scale)
DEV_HALF_LIFE = 15.0  # minutes: arbitrage pulls the perp back to the index after flow impact
ANCHOR_HALF_LIFE = 10 * 1440  # minutes: a weak pull of the index back to its starting level,
                              # so a month of history stays at realistic prices
PERMANENT = 0.2       # share of a minute's impact the index keeps (spot follows a cascade)
GAMMA = 0.12          # a linear equivalent of the forced impact, to size informed volume
NOISE_SHARE = 0.35    # noise-trader price noise relative to the exogenous volatility
HEDGE_SHARE = 0.25    # delta-neutral book, as a share of the OI scale
SIDE_SHARE = 0.55     # max(longs, shorts) / (longs + shorts), roughly: sets the arrival rate
VOL_MULT = (0.45, 1.0, 1.9)                      # quiet, normal, excited
P_QUIET, P_EXCITED = 1 / 600, 1 / 1200           # per minute, out of "normal"
P_BACK = (1 / 240, 0.0, 1 / 120)                 # per minute, back to "normal"
DIURNAL = 1.0 + 0.25 * np.cos(2 * np.pi * (np.arange(24) - 15) / 24)  # busiest ~15:00 UTC
GARCH_A, GARCH_B = 0.05, 0.93  # persistence 0.98: clusters of ~an hour (regimes: longer)
LIQ, STOP, TAKE, PLAN = 0, 1, 2, 3  # why a position closed (_open relies on LIQ 0, STOP 1)
_LONG, _SHORT = np.int8(1), np.int8(-1)
# The minute's position trades are counted in one bincount over (row, path point), 61 points
# per row. Rows 0-3 are taker buys: open long, market close of a short (planned or stopped),
# liquidated short, take-profit of a long (a resting sell that a taker buy fills); rows 4-7 the
# sells: open short, market close of a long, liquidated long, take-profit of a short. Keys are
# stored premultiplied by 61, + 1 (path point = second + 1).
_ROWS = 8
_BUY_ROW, _SELL_ROW = 1, 4 * 61 + 1            # opens
_CLOSE_L, _CLOSE_S = 5 * 61 + 1, 1 * 61 + 1    # planned closes
_FIRED_KEY = np.array([6, 2, 5, 1, 3, 7]) * 61 + 1  # [kind * 2 + short]: LIQ, STOP, TAKE

@dataclass(frozen=True)
class Regime:
    vol: float = 1.0          # × the symbol's daily volatility
    trend_day: float = 0.03   # drift while trending, per day
    trend_frac: float = 0.35  # share of time trending
    trend_len: float = 480.0  # mean trend length, minutes
    jumps_day: float = 0.7    # jumps per day
    jump_sigma: float = 10.0  # jump size scale, × the base per-minute σ
    depth: float = 1.0        # × order-book depth


REGIMES = {
    "mixed": Regime(),
    "calm": Regime(vol=0.5, trend_day=0.01, trend_frac=0.2, trend_len=360, jumps_day=0.1,
                   jump_sigma=6, depth=1.3),
    "trending": Regime(vol=0.9, trend_day=0.08, trend_frac=0.75, trend_len=1080, jumps_day=0.5),
    "volatile": Regime(vol=2.0, trend_day=0.05, trend_frac=0.4, trend_len=360, jumps_day=3.0,
                       jump_sigma=12, depth=0.6),
}

TAPE_F = ("open", "high", "low", "close", "quote", "tb_quote",
          "mopen", "mhigh", "mlow", "mclose", "index")
TAPE_I = ("volume", "taker", "trades", "first_id", "oi", "longs", "shorts", "hedge",
          "open_l", "open_s", "close_l", "close_s", "liq_l", "liq_s")
POS = {"side": np.int8, "units": np.int64, "entry": np.float64, "lev": np.float64,
       "liq": np.float64, "tp": np.float64, "sl": np.float64, "due": np.int64,
       "ext": np.int64, "csec": np.int64, "alive": np.bool_, "kind": np.int8,
       "opened": np.int64, "down": np.float64, "down_kind": np.int8, "up": np.float64,
       "up_kind": np.int8}
LIQ_REC = {"time": np.int64, "side": np.int8, "units": np.int64, "bk": np.float64,
           "avg": np.float64, "liq": np.float64}
_SCALARS = ("k", "n", "np", "price", "xlog", "dev", "anchor", "g", "volstate", "trend", "pi",
            "pi_ema", "hedge_x", "ema_f", "ema_s", "ema_r", "next_id", "longs", "shorts",
            "hedge", "oi_start", "pool_no", "pool_i")


def _ema_a(half_life_min: float) -> float:
    return 1.0 - 2.0 ** (-1.0 / half_life_min)


_ANCHOR_A = 1.0 - 2.0 ** (-1.0 / ANCHOR_HALF_LIFE)
_NOISE_NORM = math.sqrt(1 + NOISE_SHARE ** 2)
_DEV_DECAY = 2.0 ** (-np.arange(1, 61) / (60 * DEV_HALF_LIFE))  # per second within a minute
_DEV_DECAY_M1 = _DEV_DECAY - 1.0


A_FAST, A_SLOW, A_REV = _ema_a(30), _ema_a(360), _ema_a(120)
_EMPTY, _EMPTY8 = np.zeros(0, np.int64), np.zeros(0, np.int8)
# reductions without the ndarray methods' Python wrappers (same ufuncs, same results)
_MIN, _MAX, _SUM, _ANY = np.minimum.reduce, np.maximum.reduce, np.add.reduce, np.logical_or.reduce


def _cross_down(path: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the first point at or below each level (levels ≥ min(path))."""
    rm = np.minimum.accumulate(path)
    return np.minimum((-rm).searchsorted(-levels, side="left"), path.size - 1)


def _cross_up(path: np.ndarray, levels: np.ndarray) -> np.ndarray:
    rm = np.maximum.accumulate(path)
    return np.minimum(rm.searchsorted(levels, side="left"), path.size - 1)


class SymbolEngine:
    """The state and the per-minute tape of one symbol. ``k`` is the next minute (epoch minutes)."""

    def __init__(self, spec, seed: int, regime: str, k0: int, listed_at_start: bool):
        self.spec, self.seed, self.regime = spec, int(seed), regime
        self.reg = REGIMES[regime]
        self.rid = list(REGIMES).index(regime)
        self.crc = zlib.crc32(spec.symbol.encode())
        self.tick, self.step = spec.tick_size, spec.step_size
        inv = 1.0 / self.tick
        # round to ticks as integer / 10^d where possible: 75843.4, not 75843.40000000001
        self.inv_tick = float(round(inv)) if abs(inv - round(inv)) < 1e-6 * inv else None
        self.sigma0 = spec.daily_vol * self.reg.vol / math.sqrt(DAY_MIN)
        br = bracket_table(spec.symbol)
        self.br_floor, self.br_mmr, self.br_cum, self.br_max = (
            br["floor"], br["mmr"], br["cum"], br["max_leverage"])
        self.pool_no, self.pool_i = 0, 0
        self.pool = traders.draw_pool(self.seed, spec.symbol, self.rid, 0, spec.median_usd)
        mean_usd = spec.median_usd * math.exp(traders.SIZE_SIGMA ** 2 / 2)
        self.life = traders.mean_life(self.pool)
        self.rate = spec.oi_usd / SIDE_SHARE / (mean_usd * self.life)  # positions per minute
        p_off = 1.0 / self.reg.trend_len
        self.p_trend_on = p_off * self.reg.trend_frac / max(1e-9, 1 - self.reg.trend_frac)
        self.p_trend_off = p_off
        self.drift = self.reg.trend_day / DAY_MIN
        self.p_jump = self.reg.jumps_day / DAY_MIN
        self.listed_k = None if listed_at_start else int(k0)
        self._blk_no, self._bu, self._bz = None, None, None

        self.k0 = self.k = int(k0)
        self.n = 0
        self.tape = {f: np.zeros(0, np.float64) for f in TAPE_F}
        self.tape.update({f: np.zeros(0, np.int64) for f in TAPE_I})
        self.pos = {f: np.zeros(0, t) for f, t in POS.items()}
        self.np = 0
        self.liq_chunks: list[dict] = []
        self._liq_cat = None
        self.recent: dict[int, dict] = {}
        self.snap = None

        self.price = float(self._round(spec.price))
        self.xlog, self.dev = math.log(self.price), 0.0  # log index, perp's log deviation
        self.anchor = self.xlog
        self.g, self.volstate, self.trend = 1.0, 1, 0
        self.pi, self.pi_ema, self.hedge_x = 1e-4, 1e-4, 0.0
        lp = math.log(self.price)
        self.ema_f = self.ema_s = self.ema_r = lp
        self.closes = np.full(6, self.price)
        self.next_id = 1_000_000 + (self.crc % 1000) * 1_000_000
        self.longs = self.shorts = self.hedge = 0
        self.books = {"down": TriggerBook(buffer=4096), "up": TriggerBook(buffer=4096),
                      "due": TriggerBook()}
        if listed_at_start:
            self._seed_population()
        self.hedge = self._hedge_target(0.0)
        self.oi_start = max(self.longs, self.shorts) + self.hedge

    # -- helpers -------------------------------------------------------------------------------

    def _round(self, p):
        if self.inv_tick is not None:
            return np.rint(p * self.inv_tick) / self.inv_tick
        return np.rint(p / self.tick) * self.tick

    def _round1(self, p: float) -> float:
        """``_round`` of one number, in Python (round() also rounds half to even: same bits)."""
        if self.inv_tick is not None:
            return round(p * self.inv_tick) / self.inv_tick
        return round(p / self.tick) * self.tick

    def _hedge_target(self, x: float) -> int:
        ramp = 1.0
        if self.listed_k is not None:  # a new listing's basis book builds up over ~3 days
            ramp = min(1.0, (self.k - self.listed_k + 1) / (3 * DAY_MIN))
        return int(round(HEDGE_SHARE * self.spec.oi_usd / self.price / self.step * math.exp(x) * ramp))

    @staticmethod
    def _grow(store: dict, need: int, base: int = 4096) -> None:
        cap = next(iter(store.values())).size
        if need <= cap:
            return
        new = max(need, 2 * cap, base)
        for f, a in store.items():
            b = np.zeros(new, a.dtype)
            b[:cap] = a
            store[f] = b

    def _take(self, n: int) -> dict:
        """The next ``n`` pre-drawn positions (pools are numbered, so a restart re-draws them)."""
        i = self.pool_i
        if i + n <= traders.POOL_SIZE:
            self.pool_i = i + n
            return {f: a[i:i + n] for f, a in self.pool.items()}
        head = {f: a[i:] for f, a in self.pool.items()}
        self.pool_no += 1
        self.pool = traders.draw_pool(self.seed, self.spec.symbol, self.rid, self.pool_no,
                                      self.spec.median_usd)
        self.pool_i = 0
        rest = self._take(n - (traders.POOL_SIZE - i))
        return {f: np.concatenate([head[f], rest[f]]) for f in head}

    def _minute_randoms(self, k: int):
        """Per-minute random numbers, drawn an hour at a time from a stream named by the hour."""
        b = k // 60
        if b != self._blk_no:
            rng = np.random.default_rng([self.seed, self.crc, self.rid, 1, b])
            self._blk_no, self._bu, self._bz = b, rng.random((60, 10)), rng.standard_normal((60, 124))
        # the scalars as Python floats (same bits, much cheaper arithmetic than numpy scalars)
        return self._bu[k % 60].tolist(), self._bz[k % 60]

    def _open(self, side, units, entry, d, due, opened):
        """Add positions: isolated margin, liquidation price by the bracket of their notional.

        Same formula as ``liqtui.model.liquidation_price(entry, lev, side, notional=N)``
        (a test checks it), inlined because it runs every simulated minute.
        """
        n = side.size
        if n == 0:
            return
        notional = units * self.step * entry
        b = self.br_floor.searchsorted(notional, side="right") - 1
        lev = np.minimum(d["lev"], self.br_max[b])
        sgn = -side  # the model's sign: −1 long, +1 short
        liq = entry * (1 + sgn * (1 / lev + self.br_cum[b] / notional)) / (1 + sgn * self.br_mmr[b])
        dist = np.abs(entry - liq)
        sd = side * dist  # (side × fraction) × dist, reordered: the same bits (side is ±1)
        tp = entry + sd * d["tp"]          # NaN fraction: no take-profit
        sl = entry - sd * d["sl"]
        has_sl = np.isfinite(sl)
        stop_or_liq = np.where(has_sl, sl, liq)
        kind_sl = has_sl.astype(np.int8)  # STOP (1) or LIQ (0)
        lg = side > 0
        i0 = self.np
        p = self.pos
        if i0 + n > p["side"].size:
            self._grow(p, i0 + n)
        s = slice(i0, i0 + n)
        p["side"][s], p["units"][s], p["entry"][s], p["lev"][s] = side, units, entry, lev
        p["liq"][s], p["tp"][s], p["sl"][s], p["due"][s] = liq, tp, sl, due
        p["ext"][s], p["csec"][s], p["alive"][s] = d["ext"], d["csec"], True
        p["kind"][s], p["opened"][s] = d["kind"], opened
        down = np.where(lg, stop_or_liq, tp)
        up = np.where(lg, tp, stop_or_liq)
        p["down"][s], p["up"][s] = down, up
        p["down_kind"][s] = np.where(lg, kind_sl, TAKE)
        p["up_kind"][s] = np.where(lg, TAKE, kind_sl)
        self.np = i0 + n
        ids = np.arange(i0, i0 + n)
        m = np.isfinite(down)
        self.books["down"].add(-down[m], ids[m])
        m = np.isfinite(up)
        self.books["up"].add(up[m], ids[m])
        self.books["due"].add(due, ids)

    def _seed_population(self) -> None:
        """Positions already open when the history starts, so the first day is not empty."""
        rng = np.random.default_rng([self.seed, self.crc, self.rid, 3])
        P0 = self.price
        n = int(self.rate * self.life)
        d = self._take(n)
        side = np.where(d["u_side"] < traders.side_prob(d["kind"], 0.0, 0.0, 0.0), 1, -1).astype(np.int8)
        age = (rng.random(n) * (d["hold"] + d["ext"] // 2)).astype(np.int64)
        entry = self._round(P0 * np.exp(self.sigma0 * np.sqrt(age + 1.0) * rng.standard_normal(n)))
        units = np.maximum(1, np.rint(d["usd"] / entry / self.step)).astype(np.int64)
        due = self.k + np.maximum(1, d["hold"] - age)
        self._open(side, units, entry, d, due, self.k - age)
        self.longs, self.shorts = int(units[side > 0].sum()), int(units[side < 0].sum())
        # drop the ones that could not still be open at P0 (liquidated, stopped or taken)
        p, i = self.pos, np.arange(self.np)
        gone = (p["down"][i] >= P0 * 0.999) | (p["up"][i] <= P0 * 1.001)
        self._close_silently(i[gone])

    def _close_silently(self, ids) -> None:
        p = self.pos
        p["alive"][ids] = False
        lg = p["side"][ids] > 0
        self.longs -= int(p["units"][ids][lg].sum())
        self.shorts -= int(p["units"][ids][~lg].sum())

    # -- the minute ----------------------------------------------------------------------------

    def _switch_states(self, u) -> None:
        v = self.volstate
        if v == 1:
            if u[0] < P_QUIET:
                self.volstate = 0
            elif u[0] < P_QUIET + P_EXCITED:
                self.volstate = 2
        elif u[0] < P_BACK[v]:
            self.volstate = 1
        if self.trend == 0:
            if u[2] < self.p_trend_on:
                self.trend = 1 if u[1] < 0.5 else -1
        elif u[2] < self.p_trend_off:
            self.trend = 0

    def _fire(self, book: str, path, lo_or_hi: float, mfac: float, down: bool):
        """Pop the stops, liquidations and take-profits the path reaches (liquidations on mark)."""
        p = self.pos
        thr = min(lo_or_hi, lo_or_hi * mfac) if down else max(lo_or_hi, lo_or_hi * mfac)
        ids = self.books[book].pop_le(-thr if down else thr)
        if ids.size == 0:
            return None
        ids = ids[p["alive"][ids]]
        if ids.size == 0:
            return None
        lvl = p[book][ids]
        kind = p[book + "_kind"][ids]
        eff = np.where(kind == LIQ, lvl / mfac, lvl)  # mark = last × mfac
        hit = eff >= lo_or_hi if down else eff <= lo_or_hi
        if not hit.all():  # reached on one of last/mark but not the one that counts: put back
            miss = ~hit
            self.books[book].add(-lvl[miss] if down else lvl[miss], ids[miss])
            ids, eff, kind = ids[hit], eff[hit], kind[hit]
            if ids.size == 0:
                return None
        sec = _cross_down(path, eff) if down else _cross_up(path, eff)
        p["alive"][ids] = False
        return ids, sec, kind

    @staticmethod
    def _impact(base, fx, lam):
        """Log impact at each second: the routine part ``base`` plus the forced flow ``fx``
        so far (square-root law; the decaying part per the kernel)."""
        F = np.convolve(fx, KERNEL)[:60]
        return base + lam * np.sign(F) * np.sqrt(np.abs(F))

    def step_minute(self, keep_recent: bool) -> None:
        k, reg, P0, step = self.k, self.reg, self.price, self.step
        t0 = k * MIN
        u, z = self._minute_randoms(k)
        z120, z121, z122, z123 = z[120:124].tolist()
        self._switch_states(u)
        diurnal = DIURNAL[(k // 60) % 24]
        mult = VOL_MULT[self.volstate] * diurnal
        sig = self.sigma0 * math.sqrt(self.g) * mult
        s_sec = sig / math.sqrt(60)
        pull = (self.anchor - self.xlog) * _ANCHOR_A
        inc = (self.trend * self.drift + pull) / 60 + s_sec * z[:60] + NOISE_SHARE * s_sec * z[60:120]
        if u[3] < self.p_jump:  # a news jump (a bit more often down), exponential size
            inc[int(u[4] * 60)] += (self.sigma0 * reg.jump_sigma * -math.log(u[6])
                                    * (-1 if u[5] < 0.55 else 1))
        # the exogenous index path relative to the last close, plus the decaying deviation
        x0 = self.xlog + self.dev - math.log(P0)   # ≈ 0 (P0 is rounded to the tick)
        xi = inc.cumsum()
        x = x0 + xi + self.dev * _DEV_DECAY_M1
        r_exo = float(xi[-1])
        rel = sig / self.sigma0
        act = diurnal * min(3.0, max(0.5, rel)) ** 0.5
        # impact per √(base units); books thin out when volatility is high
        thin = max(1.0, rel) ** 0.25 / reg.depth
        lam = IMPACT_1PCT * thin / math.sqrt(0.01 * self.spec.oi_usd / P0)
        lam_lin = GAMMA * thin * P0 / self.spec.oi_usd
        lam_r = ROUTINE * thin * P0 / self.spec.oi_usd
        p = self.pos

        # -- new positions: sides from the signals (in units of the base volatility)
        s0 = self.sigma0
        signals = ((self.ema_f - self.ema_s) / (s0 * 19.0),
                   (math.log(P0) - self.ema_r) / (s0 * 11.0),
                   math.log(P0 / self.closes[0]) / (s0 * 2.24))
        rate = self.rate * act * (3.0 if self.listed_k is not None and k - self.listed_k < 60 else 1.0)
        n_new = max(0, int(round(rate + math.sqrt(rate) * z122)))
        d = self._take(n_new)
        short = d["u_side"] >= traders.side_prob(d["kind"], *signals)
        side = np.where(short, _SHORT, _LONG)
        units_new = np.maximum(1, np.rint(d["usd"] / P0 / step)).astype(np.int64)
        pt_new = d["sec"] + 1  # the path point of each open
        # routine signed flow per second (base units)
        f = np.bincount(d["sec"], weights=side * units_new * step, minlength=60)
        if n_new == 0:
            f = np.zeros(60)  # (bincount of nothing is an int array)

        # -- planned closes; a loser is held on once if its trader does that
        due = self.books["due"].pop_le(k)
        due = due[p["alive"][due]]
        if due.size:
            c_side = p["side"][due]
            c_ext = p["ext"][due]
            ext = (c_side * (P0 - p["entry"][due]) < 0) & (c_ext > 0)
            e, new_due = due[ext], k + c_ext[ext]
            p["due"][e] = new_due
            p["ext"][e] = 0
            self.books["due"].add(new_due, e)
            keep = ~ext
            due, c_side = due[keep], c_side[keep]
            p["alive"][due] = False
            c_units, c_csec = p["units"][due], p["csec"][due]
            f -= np.bincount(c_csec, weights=c_side * c_units * step, minlength=60)
        else:
            c_side, c_units, c_csec = _EMPTY8, _EMPTY, _EMPTY
        noise = z[60:120] * (NOISE_SHARE * s_sec / lam_lin)  # the flow behind that noise
        base = lam_r * np.convolve(f, KERNEL)[:60]
        fx = np.zeros(60)  # forced flow

        # -- cascade: stops and liquidations are market orders that move the path; repeat
        mfac = (1.0 + self.pi_ema) / (1.0 + self.pi)
        fired = []
        imp = base
        bd, bu = self.books["down"], self.books["up"]
        for _ in range(MAX_CASCADE):
            path = P0 * np.exp(x + imp)
            lo, hi = float(_MIN(path)), float(_MAX(path))
            # most minutes reach no trigger: two float comparisons instead of two _fire calls
            new = [r for r in (
                self._fire("down", path, lo, mfac, True) if -min(lo, lo * mfac) >= bd.min_key() else None,
                self._fire("up", path, hi, mfac, False) if max(hi, hi * mfac) >= bu.min_key() else None,
            ) if r]
            if not new:
                break
            for ids, sec, kind in new:
                mkt = kind != TAKE  # take-profits rest in the book: no impact
                if _ANY(mkt):
                    fx -= np.bincount(sec[mkt], weights=(p["side"][ids] * p["units"][ids] * step)[mkt],
                                      minlength=60)
            fired += new
            imp = self._impact(base, fx, lam)
        else:
            path = P0 * np.exp(x + imp)
            lo, hi = float(_MIN(path)), float(_MAX(path))
        imp_end = float(imp[-1])
        full = np.empty(61)
        full[0] = P0
        full[1:] = self._round(path)
        # rounding is monotone, so the rounded extremes are the extremes of the rounded path
        high, low = max(P0, self._round1(hi)), min(P0, self._round1(lo))
        if keep_recent:  # the per-second mark and index, for live events
            mark = self._round(path * mfac)
            index = self._round(path / (1.0 + self.pi))
            m_ohlc = (mark[0], mark.max(), mark.min(), mark[-1])
            idx_c = index[-1]
        else:  # history: the extremes are enough
            r = self._round1
            p0, p1 = float(path[0]), float(path[-1])
            m_ohlc = (r(p0 * mfac), r(hi * mfac), r(lo * mfac), r(p1 * mfac))
            idx_c = r(p1 / (1.0 + self.pi))

        # -- new positions enter at the price they traded at
        self._open(side, units_new, full[pt_new], d, k + 1 + d["hold"], k)

        # -- accounting: flows by reason and side, taker buys and sells per path point
        keys = [d["sec"] + np.where(short, _SELL_ROW, _BUY_ROW),
                c_csec + np.where(c_side < 0, _CLOSE_S, _CLOSE_L)]
        units = [units_new, c_units]
        for ids, sec, kind in fired:
            keys.append(sec + _FIRED_KEY[kind * 2 + (p["side"][ids] < 0)])
            units.append(p["units"][ids])
        m = np.bincount(np.concatenate(keys), weights=np.concatenate(units),
                        minlength=_ROWS * 61).reshape(2, 4, 61)
        # whole units: the float sums are exact, in any order
        o_l, c_s, l_s, t_l, o_s, c_l, l_l, t_s = map(int, m.sum(2).ravel().tolist())
        flows = (o_l, o_s, c_l + t_l, c_s + t_s, l_l, l_s)
        buy_pt, sell_pt = m.sum(1)  # (no matmul: OpenBLAS would wake its threads)
        pos_units = o_l + o_s + c_l + c_s + l_l + l_s + t_l + t_s
        buy_units = o_l + c_s + l_s + t_l
        self.longs += o_l - c_l - t_l - l_l
        self.shorts += o_s - c_s - t_s - l_s
        if l_l + l_s:
            f_ids = np.concatenate([r[0] for r in fired])
            f_sec = np.concatenate([r[1] for r in fired])
            lq = np.concatenate([r[2] for r in fired]) == LIQ
            li, ls = f_ids[lq], f_sec[lq]
            sd = p["side"][li]
            rec = {"time": t0 + 1000 * ls + 999, "side": (sd < 0).astype(np.int8),
                   "units": p["units"][li], "bk": self._round(p["entry"][li] * (1 - sd / p["lev"][li])),
                   "avg": full[ls + 1], "liq": p["liq"][li]}
            o = np.lexsort((li, rec["time"]))
            rec = {f_: a[o] for f_, a in rec.items()}
            self.liq_chunks.append(rec)
            self._liq_cat = None
            n_liq = int(li.size)
            liq_units = l_l + l_s
        else:
            rec, n_liq, liq_units = None, 0, 0

        # hedgers: a slowly varying delta-neutral book (two-sided volume, no net flow)
        self.hedge_x = self.hedge_x * (1 - 1 / 2880) + 0.25 * math.sqrt(2 / 2880) * z120
        h_new = self._hedge_target(self.hedge_x)
        dh = abs(h_new - self.hedge)
        self.hedge = h_new
        # noise traders (their net flow is the noise impact above) and the informed flow behind
        # the exogenous move (its impact is the move itself)
        nn = int(round(float(_SUM(noise)) / step))
        v_noise = max(abs(nn), int(-0.35 * (pos_units + 1) * act * math.log(u[7] * u[8] + 1e-300)))
        inf = int(0.2 * abs(r_exo) / lam_lin / step)
        sp_buy = (v_noise + nn) // 2 + (inf if r_exo > 0 else 0) + dh // 2
        sp_sell = v_noise - (v_noise + nn) // 2 + (0 if r_exo > 0 else inf) + dh - dh // 2
        tpm = self.spec.trades_per_min * act
        n_other = 61 + max(0, int(round(tpm + math.sqrt(tpm) * z123)))
        other = pos_units - liq_units + sp_buy + sp_sell
        if other < n_other + 1:  # every trade needs at least one lot step
            sp_buy += n_other + 1 - other
        vwap_pt = float(_SUM(full[1:])) / 60  # the mean, without np.mean's overhead
        volume = pos_units + sp_buy + sp_sell
        taker = buy_units + sp_buy
        q_buy, q_sell = float(buy_pt @ full), float(sell_pt @ full)
        quote = (q_buy + q_sell + (sp_buy + sp_sell) * vwap_pt) * step
        tb_quote = (q_buy + sp_buy * vwap_pt) * step

        # -- tape
        i = self.n
        if i >= self.tape["open"].size:
            self._grow(self.tape, i + 1, base=DAY_MIN)
        t = self.tape
        c = float(full[60])
        t["open"][i], t["high"][i], t["low"][i], t["close"][i] = P0, high, low, c
        t["mopen"][i], t["mhigh"][i], t["mlow"][i], t["mclose"][i] = m_ohlc
        t["index"][i], t["quote"][i], t["tb_quote"][i] = idx_c, quote, tb_quote
        t["volume"][i], t["taker"][i] = volume, taker
        t["trades"][i], t["first_id"][i] = n_other + n_liq, self.next_id
        t["longs"][i], t["shorts"][i], t["hedge"][i] = self.longs, self.shorts, self.hedge
        t["oi"][i] = max(self.longs, self.shorts) + self.hedge
        (t["open_l"][i], t["open_s"][i], t["close_l"][i], t["close_s"][i],
         t["liq_l"][i], t["liq_s"][i]) = flows
        if keep_recent:
            self.recent[k] = {
                "path": full, "mark": mark, "index": index, "liq": rec, "n_other": n_other,
                "volume": volume, "taker": taker, "quote": quote, "tb_quote": tb_quote,
                "first_id": self.next_id, "trades": n_other + n_liq,
            }
            self.recent.pop(k - RECENT_MINUTES, None)
        self.next_id += n_other + n_liq
        self.n = i + 1
        self.k = k + 1

        # -- state for the next minute (GARCH fed by the realised return, clipped so that one
        # cascade raises volatility for a while without running away)
        zr = min(5.0, abs(r_exo + 0.5 * imp_end) / (self.sigma0 * mult * _NOISE_NORM))
        self.g = min(6.0, max(0.3, (1 - GARCH_A - GARCH_B) + GARCH_A * zr * zr + GARCH_B * self.g))
        self.price = c
        self.xlog += float(xi[-1]) + PERMANENT * imp_end
        self.dev = self.dev * float(_DEV_DECAY[-1]) + (1 - PERMANENT) * imp_end
        lc = math.log(c)
        self.ema_f += A_FAST * (lc - self.ema_f)
        self.ema_s += A_SLOW * (lc - self.ema_s)
        self.ema_r += A_REV * (lc - self.ema_r)
        self.closes[:-1] = self.closes[1:]
        self.closes[-1] = c
        self.pi = 0.97 * self.pi + 0.03 * 1e-4 + 4e-5 * z121
        self.pi_ema += 0.1 * (self.pi - self.pi_ema)

    # -- running, compaction, snapshots, saving ------------------------------------------------

    def run_to(self, end_k: int, *, checkpoint=None) -> None:
        """Generate minutes up to (not including) ``end_k``; snapshot the state before the last."""
        recent_from = end_k - RECENT_MINUTES
        while self.k < end_k:
            if self.k % COMPACT_EVERY == 0 and self.n:
                self.compact()
                if checkpoint is not None:
                    checkpoint(self)
            if self.k == end_k - 1:
                self.snap = (self.k, self.truth_arrays())
            self.step_minute(self.k >= recent_from)

    def truth_arrays(self) -> dict:
        p, n = self.pos, self.np
        a = p["alive"][:n]
        fields = ("side", "units", "liq", "lev", "entry", "kind", "sl", "opened")
        return {f: p[f][:n][a].copy() for f in fields}

    def compact(self) -> None:
        p, n = self.pos, self.np
        keep = np.nonzero(p["alive"][:n])[0]
        mapping = np.full(max(n, 1), -1, np.int64)
        mapping[keep] = np.arange(keep.size)
        for f in POS:
            p[f] = p[f][keep].copy()
        self.np = keep.size
        for b in self.books.values():
            b.remap(mapping)

    def _rebuild_books(self) -> None:
        p, n = self.pos, self.np
        ids = np.arange(n)
        a = p["alive"][:n]
        down, up = p["down"][:n], p["up"][:n]
        m = a & np.isfinite(down)
        self.books["down"].rebuild(-down[m], ids[m])
        m = a & np.isfinite(up)
        self.books["up"].rebuild(up[m], ids[m])
        self.books["due"].rebuild(p["due"][:n][a], ids[a])

    def liquidations(self) -> dict:
        if self._liq_cat is None:
            if self.liq_chunks:
                self._liq_cat = {f: np.concatenate([c[f] for c in self.liq_chunks]) for f in LIQ_REC}
                self.liq_chunks = [self._liq_cat]
            else:
                self._liq_cat = {f: np.zeros(0, t) for f, t in LIQ_REC.items()}
        return self._liq_cat

    def state(self) -> dict:
        """Everything needed to continue exactly (saved right after a compaction)."""
        out = {f"tape_{f}": a[:self.n] for f, a in self.tape.items()}
        out.update({f"pos_{f}": a[:self.np] for f, a in self.pos.items()})
        out.update({f"liq_{f}": a for f, a in self.liquidations().items()})
        out["closes"] = self.closes
        scal = {s: getattr(self, s) for s in _SCALARS}
        scal = {s: (v.item() if hasattr(v, "item") else v) for s, v in scal.items()}
        out["meta"] = np.array(json.dumps({"scalars": scal, "version": ENGINE_VERSION}))
        return out

    def load(self, z) -> None:
        meta = json.loads(str(z["meta"]))
        for s, v in meta["scalars"].items():
            setattr(self, s, v)
        self.pool = traders.draw_pool(self.seed, self.spec.symbol, self.rid, self.pool_no,
                                      self.spec.median_usd)
        self.tape = {f: np.array(z[f"tape_{f}"]) for f in self.tape}
        self.pos = {f: np.array(z[f"pos_{f}"]) for f in POS}
        self.liq_chunks = [{f: np.array(z[f"liq_{f}"]) for f in LIQ_REC}]
        self._liq_cat = None
        self.closes = np.array(z["closes"])
        self._rebuild_books()
