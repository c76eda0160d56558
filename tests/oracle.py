"""A slow, per-step reference implementation of LQ-1 ("the oracle").

Written from ``shared/design/MODEL.md`` and ``docs/model-notes.md`` only, independently of the
engine in ``liqtui.model``. It keeps ``A[tier, side, bin]`` (base quantity) as a dense array over a
fixed range of absolute bin indices and walks the steps one by one, doing exactly what the docs
say, in their order:

    consume -> net -> close or create -> decay -> snapshot

Only the grid (``Grid``, ``choose_bin_width``) and the liquidation-price formula
(``liquidation_price``) come from the library; they are tested on their own.

Readability beats speed here: every rule is one small block with the sentence it implements.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from liqtui.model import Grid, choose_bin_width, liquidation_price

LONG, SHORT = 0, 1
SIDES = ("long", "short")
DEFAULT_LEVERAGES = (5, 10, 25, 50, 100)
DEFAULT_WEIGHTS = (0.10, 0.25, 0.30, 0.20, 0.15)
FIVE_MINUTES = 300_000


# --------------------------------------------------------------------------------------------
# parameters and filters


def enabled_tiers(tier_filter, leverages):
    """Boolean mask over the tiers. "high" = leverage >= 25, "low" = leverage <= 10."""
    lev = list(leverages)
    if tier_filter == "all":
        return np.array([True] * len(lev))
    if tier_filter == "high":
        return np.array([L >= 25 for L in lev])
    if tier_filter == "low":
        return np.array([L <= 10 for L in lev])
    wanted = [float(x) for x in tier_filter]
    return np.array([float(L) in wanted for L in lev])


def enabled_sides(side_filter):
    return {"both": np.array([True, True]), "long": np.array([True, False]),
            "short": np.array([False, True])}[side_filter]


def next_125_up(w):
    """The next larger value of the 1-2-5 series."""
    e = math.floor(math.log10(w) + 1e-12)
    m = round(w / 10 ** e)
    if m == 1:
        return 2 * 10 ** e
    if m == 2:
        return 5 * 10 ** e
    return 10 ** (e + 1)


# --------------------------------------------------------------------------------------------
# the bars


@dataclass
class Prepared:
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray  # max(o, h, l, c)
    low: np.ndarray  # min(o, h, l, c)
    close: np.ndarray
    vwap: np.ndarray
    share: np.ndarray  # taker-buy share s (before clamp)
    cons_low: np.ndarray  # mark low where given, else the bar's low
    cons_high: np.ndarray
    oi: np.ndarray
    interval: int


def most_common_positive_difference(time):
    diffs = [int(b - a) for a, b in zip(time[:-1], time[1:]) if b - a > 0]
    if not diffs:
        raise ValueError("need at least two bars to know the interval")
    counts = Counter(diffs)
    best = max(counts.values())
    return min(d for d, k in counts.items() if k == best)


def prepare(bars):
    time = np.asarray(bars["time"], dtype=np.int64)
    T = len(time)
    o = np.asarray(bars["open"], dtype=float)
    h = np.asarray(bars["high"], dtype=float)
    l = np.asarray(bars["low"], dtype=float)
    c = np.asarray(bars["close"], dtype=float)
    V = np.asarray(bars["volume"], dtype=float)
    Q = np.asarray(bars["quote_volume"], dtype=float)
    Qb = np.asarray(bars["taker_buy_quote_volume"], dtype=float)
    oi = np.asarray(bars["open_interest"], dtype=float)
    high = np.empty(T)
    low = np.empty(T)
    vwap = np.empty(T)
    share = np.empty(T)
    cons_low = np.empty(T)
    cons_high = np.empty(T)
    mark_low = bars.get("mark_low")
    mark_high = bars.get("mark_high")
    for u in range(T):
        # "high = max(o, h, l, c), low = min(o, h, l, c) (a bad row, e.g. swapped high and
        # low, still spans its prices)"
        high[u] = max(o[u], h[u], l[u], c[u])
        low[u] = min(o[u], h[u], l[u], c[u])
        # "V = 0: VWAP = (h + l + c)/3, s = 0.5; Q = 0 with V > 0: s = 0.5"
        if V[u] > 0 and Q[u] > 0:  # "V = 0 or Q = 0 (no trade to average): (h + l + c)/3"
            vw = Q[u] / V[u]
        else:
            vw = (high[u] + low[u] + c[u]) / 3.0
        # "VWAP is clipped into [l, h]"
        vwap[u] = min(max(vw, low[u]), high[u])
        if V[u] > 0 and Q[u] > 0 and math.isfinite(Qb[u]):
            share[u] = Qb[u] / Q[u]
        else:  # no volume, no quote volume, or a venue without taker-buy volume
            share[u] = 0.5
        # "Consumption uses mark_low/mark_high where given (finite), else low/high"
        ml = float(mark_low[u]) if mark_low is not None else math.nan
        mh = float(mark_high[u]) if mark_high is not None else math.nan
        cons_low[u] = ml if math.isfinite(ml) else low[u]
        cons_high[u] = mh if math.isfinite(mh) else high[u]
    return Prepared(time, o, high, low, c, vwap, share, cons_low, cons_high, oi,
                    most_common_positive_difference(time))


def delta_oi(prep, *, seed=False, max_gap_ms=3_600_000):
    """ΔOI per step and the dropped gaps ((previous step, step) pairs)."""
    T = len(prep.time)
    d = np.zeros(T)
    dropped = []
    prev = None
    for u in range(T):
        if not math.isfinite(prep.oi[u]):
            continue  # "Bars with unknown OI have ΔOI = 0"
        if prev is None:
            # "The first known value has no predecessor: ΔOI = 0 (with seed, the first
            # step's ΔOI is the first OI itself)"
            d[u] = prep.oi[u] if seed else 0.0
        else:
            gap = int(prep.time[u] - prep.time[prev]) - prep.interval
            if gap > max_gap_ms:
                dropped.append((prev, u))  # "the change is dropped and a warning names the gap"
            else:
                d[u] = prep.oi[u] - prep.oi[prev]  # shorter gaps: applied at the first bar after
        prev = u
    return d, dropped


def column_period(time, interval, max_columns):
    """p = 1 if S <= max_columns, else the smallest p with ceil(S/p) + 1 <= max_columns."""
    S = (int(time[-1]) - int(time[0])) // interval + 1  # intervals spanned by the steps
    if S <= max_columns:
        return 1
    p = 2
    while -(-S // p) + 1 > max_columns:
        p += 1
    return p


def column_last_steps(time, interval, p):
    """Index of the last step of each column (columns aligned to absolute time)."""
    keys = [int(t) // (p * interval) for t in time]
    return [u for u in range(len(keys)) if u == len(keys) - 1 or keys[u + 1] != keys[u]]


# --------------------------------------------------------------------------------------------
# the model


@dataclass
class OracleResult:
    bin_width: float
    interval_ms: int
    bin_offset: int  # absolute index of bin 0 of the arrays below
    prices: np.ndarray  # bin centres
    times: np.ndarray  # column end times
    column_steps: list  # last step of each column
    period: int
    columns: np.ndarray  # (C, nb) USD under the filters
    state: np.ndarray  # (tiers, 2, nb) base quantity at the end, all tiers
    consumed: np.ndarray  # (T, 2)
    accounting: dict
    deposits: list  # (step, side, tier, bin, qty) for every kept deposit part
    deaths: dict  # (step, side, tier, bin) -> death step or -1
    dropped_gaps: list
    delta_oi: np.ndarray
    n: np.ndarray
    s_prime: np.ndarray
    prep: Prepared
    params: dict
    tier_mask: np.ndarray
    side_mask: np.ndarray
    step_usd: np.ndarray | None = None  # (T, nb) if every step was kept
    reference_price: float = 0.0
    start: int = 0
    as_of: int = 0
    leverages: tuple = ()
    weights: tuple = ()

    @property
    def warnings(self):
        return [f"open-interest change dropped across the gap {int(self.prep.time[a])} .. "
                f"{int(self.prep.time[b])}" for a, b in self.dropped_gaps]

    def usd(self, side=None, tiers=None):
        """Final USD per bin under filters (defaults: the run's filters)."""
        tmask = self.tier_mask if tiers is None else enabled_tiers(tiers, self.leverages)
        smask = self.side_mask if side is None else enabled_sides(side)
        return (self.state[tmask][:, smask].sum(axis=(0, 1))) * self.prices



def deposit_prices(E, L, mmr):
    """Liquidation prices of a long and a short opened at E with leverage L (first bracket)."""
    return (float(liquidation_price(E, L, "long", mmr=mmr)),
            float(liquidation_price(E, L, "short", mmr=mmr)))


def run_oracle(
    bars,
    *,
    leverages=DEFAULT_LEVERAGES,
    weights=DEFAULT_WEIGHTS,
    tier_filter="all",
    side_filter="both",
    bin_width=None,
    tick_size=None,
    alpha=1.0,
    entry_spread=False,
    both_sides=False,
    half_life_ms=None,
    seed=False,
    max_columns=2048,
    max_bins=6000,
    max_gap_ms=3_600_000,
    mmr=0.004,
    keep_steps=False,
):
    """Run LQ-1 step by step; ``keep_steps`` also keeps the USD snapshot of every step."""
    params = dict(leverages=tuple(leverages), weights=tuple(weights), tier_filter=tier_filter,
                  side_filter=side_filter, bin_width=bin_width, tick_size=tick_size,
                  alpha=alpha, entry_spread=entry_spread, both_sides=both_sides,
                  half_life_ms=half_life_ms, seed=seed, max_columns=max_columns,
                  max_bins=max_bins, max_gap_ms=max_gap_ms, mmr=mmr)
    prep = prepare(bars)
    T = len(prep.time)
    interval = prep.interval
    lev = [float(L) for L in leverages]
    omega = [float(x) for x in weights]
    nt = len(lev)
    d_oi, dropped = delta_oi(prep, seed=seed, max_gap_ms=max_gap_ms)

    # s' = 0.5 + α(clamp(s, 0.2, 0.8) − 0.5), the same for closing and creating
    s_prime = np.array([0.5 + alpha * (min(max(s, 0.2), 0.8) - 0.5) for s in prep.share])

    # entries: VWAP, or {low, VWAP, high} x {.25, .5, .25} for steps >= 5 min with the option
    def entries(u):
        if entry_spread and interval >= FIVE_MINUTES:
            return [(prep.low[u], 0.25), (prep.vwap[u], 0.5), (prep.high[u], 0.25)]
        return [(prep.vwap[u], 1.0)]

    def kept_deposits(u):
        """(side, tier, entry weight, P) of step u's deposits that are not dropped."""
        out = []
        for E, we in entries(u):
            for i in range(nt):
                p_long, p_short = deposit_prices(E, lev[i], mmr)
                # "Drop a deposit on the wrong side of the step's close": a long if P >= close,
                # a short if P <= close
                if p_long < prep.close[u]:
                    out.append((LONG, i, we, p_long))
                if p_short > prep.close[u]:
                    out.append((SHORT, i, we, p_short))
        return out

    # the bin width: given, or the 1-2-5 value nearest 0.05 % of the reference price (last
    # close), raised to the tick; coarsened (1-2-5) while the span of every bin a deposit could
    # reach exceeds max_bins (our reading of "the span")
    all_prices = [P for u in range(T) for (_, _, _, P) in kept_deposits(u)]
    if not all_prices:
        all_prices = [float(prep.close[-1])]
    if bin_width is not None:
        w = float(bin_width)
    else:
        w = float(choose_bin_width(float(prep.close[-1]), tick_size))
    while True:
        grid = Grid.from_width(w)
        lo_bin = min(math.floor(P / w - 0.5) for P in all_prices)
        hi_bin = max(math.floor(P / w - 0.5) + 1 for P in all_prices)
        if bin_width is not None or hi_bin - lo_bin + 1 <= max_bins:
            break
        w = next_125_up(w)
    offset = lo_bin
    nb = hi_bin - lo_bin + 1
    centres = np.array([float(grid.centre(offset + k)) for k in range(nb)])

    tier_mask = enabled_tiers(tier_filter, lev)
    side_mask = enabled_sides(side_filter)

    p = column_period(prep.time, interval, max_columns)
    col_steps = column_last_steps(prep.time, interval, p)
    col_of_step = {u: k for k, u in enumerate(col_steps)}

    A = np.zeros((nt, 2, nb))
    consumed = np.zeros((T, 2))
    n_arr = np.zeros(T)
    acc = {k: np.zeros(2) for k in ("deposited", "consumed", "closed", "unmatched", "decayed")}
    deposits = []
    columns = np.zeros((len(col_steps), nb))
    step_usd = np.zeros((T, nb)) if keep_steps else None
    decay = 2.0 ** (-interval / half_life_ms) if half_life_ms else None

    for u in range(T):
        # 1. Consume: long bins with centre >= low, short bins with centre <= high, fully.
        long_hit = centres >= prep.cons_low[u]
        short_hit = centres <= prep.cons_high[u]
        consumed[u, LONG] = A[:, LONG, long_hit].sum()
        consumed[u, SHORT] = A[:, SHORT, short_hit].sum()
        A[:, LONG, long_hit] = 0.0
        A[:, SHORT, short_hit] = 0.0
        acc["consumed"] += consumed[u]

        # 2. Net: n = ΔOI + consumed (long and short).
        n = d_oi[u] + consumed[u, LONG] + consumed[u, SHORT]
        n_arr[u] = n
        sp = s_prime[u]

        if n < 0:
            # 3. Close: R_long = |n|(1 − s'), R_short = |n|s'; scale each side by
            # max(0, 1 − R/total); what cannot be removed is unmatched.
            R = (abs(n) * (1.0 - sp), abs(n) * sp)
            for side in (LONG, SHORT):
                total = A[:, side, :].sum()
                if total <= R[side]:
                    acc["closed"][side] += total
                    acc["unmatched"][side] += R[side] - total
                    A[:, side, :] = 0.0
                else:
                    A[:, side, :] *= 1.0 - R[side] / total
                    acc["closed"][side] += R[side]
        elif n > 0:
            # 4. Create: q_long = n s', q_short = n(1 − s') (both_sides: n each); each tier
            # gets q·ω_i at its liquidation price, split between the two nearest centres.
            q = (n, n) if both_sides else (n * sp, n * (1.0 - sp))
            for (side, i, we, P) in kept_deposits(u):
                qty = q[side] * we * omega[i]
                x = P / w - 0.5  # model-notes: x = P/w − ½, j = floor(x)
                j = math.floor(x)
                frac = x - j
                A[i, side, j - offset] += qty * (1.0 - frac)
                A[i, side, j + 1 - offset] += qty * frac
                acc["deposited"][side] += qty
                deposits.append((u, side, i, j, qty * (1.0 - frac)))
                deposits.append((u, side, i, j + 1, qty * frac))

        # 5. Decay (optional): everything resting at the end of the step, this step's
        # deposits included, times 2^(−interval/half-life).
        if decay is not None:
            before = A.sum(axis=(0, 2))
            A *= decay
            acc["decayed"] += before - A.sum(axis=(0, 2))

        # 6. Snapshot: Σ over enabled tiers and sides, in USD.
        if keep_steps or u in col_of_step:
            usd = A[tier_mask][:, side_mask].sum(axis=(0, 1)) * centres
            if keep_steps:
                step_usd[u] = usd
            if u in col_of_step:
                columns[col_of_step[u]] = usd

    acc["resting"] = A.sum(axis=(0, 2))

    # deaths: the first later step whose (mark) low <= centre (long) / high >= centre (short)
    deaths = {}
    for (u, side, i, j, qty) in deposits:
        centre = centres[j - offset]
        if side == LONG:
            reached = np.nonzero(prep.cons_low[u + 1:] <= centre)[0]
        else:
            reached = np.nonzero(prep.cons_high[u + 1:] >= centre)[0]
        deaths[(u, side, i, j)] = int(u + 1 + reached[0]) if len(reached) else -1

    return OracleResult(
        bin_width=w, interval_ms=interval, bin_offset=offset, prices=centres,
        times=np.array([int(prep.time[u]) + interval for u in col_steps], dtype=np.int64),
        column_steps=col_steps, period=p, columns=columns, state=A, consumed=consumed,
        accounting=acc, deposits=deposits, deaths=deaths, dropped_gaps=dropped,
        delta_oi=d_oi, n=n_arr, s_prime=s_prime, prep=prep, params=params,
        tier_mask=tier_mask, side_mask=side_mask, step_usd=step_usd,
        reference_price=float(prep.close[-1]), start=int(prep.time[0]),
        as_of=int(prep.time[-1]) + interval, leverages=tuple(lev), weights=tuple(omega),
    )


# --------------------------------------------------------------------------------------------
# levels and the liquidation map, from a final USD state


@dataclass
class RefLevel:
    price: float
    side: str
    usd: float
    distance_pct: float
    cumulative_usd: float
    tiers: np.ndarray  # USD per tier (all tiers; disabled ones are 0)
    low: float
    high: float
    first: int = 0  # cluster bin range (array indices)
    last: int = 0


def smooth3(raw):
    """[1, 1, 1]/3 with zero outside the array."""
    padded = np.concatenate([[0.0], raw, [0.0]])
    return np.array([(padded[k] + padded[k + 1] + padded[k + 2]) / 3.0 for k in range(len(raw))])


def plateau_peaks(sm):
    """Runs [a, b] of equal values that are higher than both neighbours (edges: lower)."""
    peaks = []
    k = 0
    N = len(sm)
    while k < N:
        b = k
        while b + 1 < N and sm[b + 1] == sm[k]:
            b += 1
        left_lower = k == 0 or sm[k - 1] < sm[k]
        right_lower = b == N - 1 or sm[b + 1] < sm[k]
        if sm[k] > 0 and left_lower and right_lower:
            peaks.append((k, b))
        k = b + 1
    return peaks


def clusters(raw, centres, reference, tie="first"):
    """Cluster bin ranges [first, last] per the Levels reading of model-notes.md.

    ``tie``: which bin is "the lowest smoothed bin" when several between two peaks are equally
    low (e.g. raw [0, a, b, 0] smooths to equal values at a and b): "first" or "last". The docs
    do not say; the tests accept either, used consistently.
    """
    pad = 2  # zero bins outside the span, so a peak at the edge is seen the same way
    r = np.concatenate([np.zeros(pad), raw, np.zeros(pad)])
    sm = smooth3(r)
    peaks = plateau_peaks(sm)
    if not peaks:
        return []
    step = centres[1] - centres[0] if len(centres) > 1 else 1.0
    ext_centres = np.concatenate([centres[0] - step * np.arange(pad, 0, -1), centres,
                                  centres[-1] + step * np.arange(1, pad + 1)])
    bounds = []  # (first, last) in padded indices
    first = 0
    for k in range(len(peaks)):
        if k == len(peaks) - 1:
            bounds.append((first, len(r) - 1))
            break
        a0, b0 = peaks[k]
        a1, b1 = peaks[k + 1]
        between = list(range(b0 + 1, a1))
        lowest = min(sm[q] for q in between)
        ties = [q for q in between if sm[q] == lowest]
        m = ties[0] if tie == "first" else ties[-1]
        h0, h1 = sm[a0], sm[a1]
        if h0 > h1:
            to_left = True
        elif h1 > h0:
            to_left = False
        else:  # equal peaks: the one nearer the price
            d0 = abs(ext_centres[(a0 + b0) // 2] - reference)
            d1 = abs(ext_centres[(a1 + b1) // 2] - reference)
            to_left = d0 <= d1
        if to_left:
            bounds.append((first, m))
            first = m + 1
        else:
            bounds.append((first, m - 1))
            first = m
    out = []
    for (f, l) in bounds:
        f2, l2 = max(f - pad, 0), min(l - pad, len(raw) - 1)
        if l2 >= f2:
            out.append((f2, l2))
    return out


def reference_levels(side_tier_usd, centres, reference, sides=(LONG, SHORT), top=None,
                     tie="first"):
    """Levels from USD per (side, tier, bin) (disabled tiers already zeroed).

    ``side_tier_usd``: array (2, tiers, nb). Returns a list of RefLevel ranked by USD
    (ties: distance to the price).
    """
    levels = []
    for side in sides:
        per_tier = side_tier_usd[side]
        raw = per_tier.sum(axis=0)
        for (f, l) in clusters(raw, centres, reference, tie=tie):
            seg = raw[f:l + 1]
            usd = seg.sum()
            if usd <= 0:
                continue
            held = np.nonzero(seg > 0)[0] + f
            price = float((seg * centres[f:l + 1]).sum() / usd)
            if side == LONG:
                cumulative = raw[held[0]:].sum()
            else:
                cumulative = raw[:held[-1] + 1].sum()
            levels.append(RefLevel(
                price=price, side=SIDES[side], usd=float(usd),
                distance_pct=(price / reference - 1.0) * 100.0,
                cumulative_usd=float(cumulative), tiers=per_tier[:, f:l + 1].sum(axis=1),
                low=float(centres[held[0]]), high=float(centres[held[-1]]), first=f, last=l))
    levels.sort(key=lambda lv: (-lv.usd, abs(lv.price - reference)))
    return levels if top is None else levels[:top]


def reference_liquidation_map(long_usd, short_usd):
    """long_usd[i] = long USD in bins >= i; short_usd[i] = short USD in bins <= i."""
    return np.cumsum(long_usd[::-1])[::-1], np.cumsum(short_usd)


# --------------------------------------------------------------------------------------------
# a small harness shared by the test files: run the oracle or the engine the same way


def run(impl, bars, **params):
    """Run ``impl`` ("oracle" or "engine") on ``bars``; the engine keeps float64 columns."""
    if impl == "oracle":
        res = run_oracle(bars, **{k: v for k, v in params.items()
                                  if k not in ("dtype", "keep_ledger")})
        return res
    from liqtui.model import build_heatmap

    params.setdefault("dtype", np.float64)
    return build_heatmap(bars, **params)


def qty(res, side, tier, abs_bin):
    """Base quantity resting at the end in absolute bin ``abs_bin`` (0 outside the span)."""
    k = int(abs_bin) - int(res.bin_offset)
    if 0 <= k < res.state.shape[2]:
        return float(res.state[tier, side, k])
    return 0.0


def column_at(res, col, abs_bin):
    k = int(abs_bin) - int(res.bin_offset)
    if 0 <= k < np.asarray(res.columns).shape[1]:
        return float(np.asarray(res.columns)[col, k])
    return 0.0


def align(a, a_off, b, b_off):
    """Pad two arrays (bins on the last axis) onto the union of their absolute bin ranges."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    lo = min(a_off, b_off)
    hi = max(a_off + a.shape[-1], b_off + b.shape[-1])

    def pad(x, off):
        out = np.zeros(x.shape[:-1] + (hi - lo,))
        out[..., off - lo:off - lo + x.shape[-1]] = x
        return out

    return pad(a, a_off), pad(b, b_off), lo


def rel_err(a, b):
    """max|a − b| / max(max|b|, tiny), per array."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    scale = max(float(np.abs(b).max()), np.finfo(float).tiny)
    return float(np.abs(a - b).max()) / scale
