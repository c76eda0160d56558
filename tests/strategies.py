"""Random bar generators shared by the model tests.

``random_bars`` makes seeded numpy random walks with the awkward features real feeds have
(flat bars, zero-volume bars, open-interest drops that empty a side, short and long gaps,
unknown open interest, mark extremes for some bars, rows whose high/low do not contain the
open/close). ``bars_strategy`` is the hypothesis version used by the property tests: short
paths, drawn step by step so hypothesis can shrink them.
"""

from __future__ import annotations

import numpy as np

try:  # hypothesis is a test dependency; the oracle tests do not need it
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None

MINUTE = 60_000
HOUR = 60 * MINUTE

BAR_KEYS = (
    "time", "open", "high", "low", "close", "volume", "quote_volume",
    "taker_buy_quote_volume", "open_interest",
)


def make_bars(rows, *, interval_ms=5 * MINUTE, start=1_700_000_100_000 // (5 * MINUTE) * (5 * MINUTE)):
    """Bars from a list of dicts with keys o h l c v vwap s oi (and optional t, ml, mh).

    ``v`` base volume, ``vwap`` and ``s`` give quote and taker-buy quote volume (``q``/``qb``
    may be given directly instead). ``t`` is the bar index in intervals (default: row number).
    """
    n = len(rows)
    out = {k: np.zeros(n) for k in BAR_KEYS}
    out["time"] = np.zeros(n, dtype=np.int64)
    has_mark = any(("ml" in r) or ("mh" in r) for r in rows)
    if has_mark:
        out["mark_low"] = np.full(n, np.nan)
        out["mark_high"] = np.full(n, np.nan)
    for k, r in enumerate(rows):
        out["time"][k] = start + int(r.get("t", k)) * interval_ms
        out["open"][k] = r["o"]
        out["high"][k] = r["h"]
        out["low"][k] = r["l"]
        out["close"][k] = r["c"]
        v = r.get("v", 1.0)
        out["volume"][k] = v
        q = r["q"] if "q" in r else v * r.get("vwap", r["c"])
        out["quote_volume"][k] = q
        out["taker_buy_quote_volume"][k] = r["qb"] if "qb" in r else q * r.get("s", 0.5)
        out["open_interest"][k] = r.get("oi", np.nan)
        if has_mark:
            out["mark_low"][k] = r.get("ml", np.nan)
            out["mark_high"][k] = r.get("mh", np.nan)
    return out


def random_bars(
    seed,
    n_steps=500,
    *,
    interval_ms=5 * MINUTE,
    price=100_000.0,
    vol=None,
    tick=None,
    flat_frac=0.03,
    zero_volume_frac=0.03,
    nan_oi_frac=0.03,
    nan_oi_runs=2,
    short_gaps=2,
    long_gaps=1,
    oi_crashes=2,
    mark_frac=0.3,
    bad_rows=3,
    jumps=4,
    first_oi_known=True,
):
    """A seeded random walk of ``n_steps`` bars (before gaps are cut out)."""
    rng = np.random.default_rng(seed)
    if vol is None:
        vol = 0.0025 * np.sqrt(interval_ms / (5 * MINUTE))
    n = int(n_steps)
    rets = rng.normal(0.0, vol, n)
    # fat tails: a few large moves that sweep high-leverage levels, rarely the 10x ones
    for _ in range(jumps):
        k = rng.integers(0, n)
        rets[k] += rng.choice([-1, 1]) * rng.uniform(0.01, 0.12)
    close = price * np.exp(np.cumsum(rets))
    open_ = np.empty(n)
    open_[0] = price
    open_[1:] = close[:-1] * np.exp(rng.normal(0, vol * 0.05, n - 1))
    wick_hi = np.abs(rng.normal(0, vol * 0.6, n))
    wick_lo = np.abs(rng.normal(0, vol * 0.6, n))
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    if tick:
        open_, high, low, close = (np.round(x / tick) * tick for x in (open_, high, low, close))
        high = np.maximum(high, np.maximum(open_, close))
        low = np.minimum(low, np.minimum(open_, close))
    flat = rng.random(n) < flat_frac
    open_[flat] = close[flat]
    high[flat] = close[flat]
    low[flat] = close[flat]
    volume = rng.lognormal(np.log(50.0 * 100_000 / price), 1.0, n)
    vwap = low + (high - low) * rng.beta(2, 2, n)
    share = rng.uniform(0, 1, n)
    ext = rng.random(n) < 0.1
    share[ext] = rng.choice([0.0, 1.0, 0.05, 0.95], ext.sum())
    quote = volume * vwap
    zero_v = rng.random(n) < zero_volume_frac
    volume[zero_v] = 0.0
    quote[zero_v] = 0.0
    taker = quote * share
    # bad rows: high/low not containing open/close, some with high < low
    for _ in range(bad_rows):
        k = rng.integers(0, n)
        if rng.random() < 0.5:
            high[k] = min(open_[k], close[k]) * (1 - vol * 0.1)
        else:
            low[k] = max(open_[k], close[k]) * (1 + vol * 0.1)
    # open interest in base units: about $5bn notional
    oi0 = 5e9 / price
    d = rng.normal(0.0003, 0.0015, n) * oi0
    for _ in range(oi_crashes):
        k = rng.integers(1, n)
        d[k] = -rng.uniform(0.05, 0.3) * oi0
    oi = oi0 + np.cumsum(d)
    oi = np.maximum(oi, oi0 * 0.2)
    oi[rng.random(n) < nan_oi_frac] = np.nan
    for _ in range(nan_oi_runs):
        k = rng.integers(1, n)
        oi[k:k + rng.integers(2, 15)] = np.nan
    if first_oi_known:
        oi[0] = oi0
    # times: aligned to the interval, then gaps cut out
    start = 1_700_000_000_000 // interval_ms * interval_ms
    time = start + np.arange(n, dtype=np.int64) * interval_ms
    keep = np.ones(n, dtype=bool)
    per_hour = HOUR // interval_ms
    for _ in range(short_gaps):  # shorter than max_gap_ms: the OI change is applied
        k = rng.integers(2, n - 2)
        keep[k:k + rng.integers(1, max(2, per_hour - 1))] = False
    for _ in range(long_gaps):  # longer than an hour: the OI change is dropped
        k = rng.integers(2, n - 2)
        keep[k:k + rng.integers(per_hour + 2, 3 * per_hour)] = False
    keep[0] = True
    keep[-1] = True
    bars = {
        "time": time[keep],
        "open": open_[keep],
        "high": high[keep],
        "low": low[keep],
        "close": close[keep],
        "volume": volume[keep],
        "quote_volume": quote[keep],
        "taker_buy_quote_volume": taker[keep],
        "open_interest": oi[keep],
    }
    if mark_frac > 0:
        m = len(bars["time"])
        given = rng.random(m) < mark_frac
        mh = bars["high"] * np.exp(rng.normal(0, vol * 0.2, m))
        ml = bars["low"] * np.exp(rng.normal(0, vol * 0.2, m))
        bars["mark_high"] = np.where(given, mh, np.nan)
        bars["mark_low"] = np.where(given, ml, np.nan)
    return bars


if st is not None:

    @st.composite
    def bars_strategy(draw, min_steps=2, max_steps=40, price=20_000.0, interval_ms=5 * MINUTE,
                      allow_nan_oi=True, allow_gaps=True, allow_marks=True):
        """Short bar paths for property tests: per-step returns, wicks, taker share, ΔOI."""
        n = draw(st.integers(min_steps, max_steps))
        f = st.floats
        rets = draw(st.lists(f(-0.06, 0.06, allow_nan=False), min_size=n, max_size=n))
        wicks = draw(st.lists(st.tuples(f(0, 0.04), f(0, 0.04)), min_size=n, max_size=n))
        shares = draw(st.lists(f(0, 1), min_size=n, max_size=n))
        pos = draw(st.lists(f(0, 1), min_size=n, max_size=n))
        vols = draw(st.lists(st.one_of(st.just(0.0), f(0.01, 100)), min_size=n, max_size=n))
        oi0 = 1000.0
        doi = draw(st.lists(st.one_of(f(0, 200), f(-400, 0), st.just(0.0)), min_size=n,
                            max_size=n))
        nan_oi = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if allow_nan_oi else [False] * n
        steps = [1] * n
        if allow_gaps and n >= 4:
            # at most a third of the steps are gaps, so the interval (the most common
            # difference of time) stays one bar
            gaps = draw(st.lists(st.tuples(st.integers(1, n - 1), st.sampled_from([2, 5, 13, 20])),
                                 max_size=(n - 1) // 3, unique_by=lambda g: g[0]))
            for k, size in gaps:
                steps[k] = size
        marks = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if allow_marks else [False] * n
        t = 0
        rows = []
        c_prev = price
        oi = oi0
        for k in range(n):
            o = c_prev
            c = o * np.exp(rets[k])
            h = max(o, c) * (1 + wicks[k][0])
            lo = min(o, c) * (1 - wicks[k][1])
            vw = lo + (h - lo) * pos[k]
            oi = max(oi + doi[k], 0.0)
            row = dict(t=t, o=o, h=h, l=lo, c=c, v=vols[k], vwap=vw, s=shares[k],
                       oi=(np.nan if (nan_oi[k] and k > 0) else oi))
            if vols[k] == 0.0:
                row["q"] = 0.0
                row["qb"] = 0.0
            if marks[k]:
                row["ml"] = lo * (1 + 0.002 * (pos[k] - 0.5))
                row["mh"] = h * (1 + 0.002 * (shares[k] - 0.5))
            rows.append(row)
            c_prev = c
            if k + 1 < n:
                t += steps[k + 1]
        return make_bars(rows, interval_ms=interval_ms)
