"""How well LQ-1 estimates the simulated traders' real liquidation map.

For each seed × regime: build a market, take 5-minute bars from what its REST API serves
(klines, mark-price klines, open-interest history: exactly what the feed backfills), run
``liqtui.model.build_heatmap`` over them, and compare with ``Market.truth_map`` at the same
instant and on the same bin grid:

* ``share``: the share of the true USD (both sides) whose bin centre lies within ±0.5 % of one
  of the model's top-10 level prices;
* ``even``: the same for a naive baseline, ten levels at ±1 … ±5 % from the price, and
  ``best``: for ten ±0.5 % windows chosen greedily on the truth itself (an upper bound);
* ``long_ratio`` / ``short_ratio``: estimated / true USD per side, everywhere and within ±10 %
  of the price (``*_near``), where a heatmap is read.

The traders' behaviour is not tuned toward LQ-1 (see ``traders.py``): the numbers are what they
are. Run ``python -m liqtui.sim.fidelity`` for the table.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..model import build_heatmap, choose_bin_width
from .market import Market

FIDELITY_NOW = 1_788_220_800_000  # 2026-09-01 00:00 UTC: a fixed instant, reproducible runs
REGIMES = ("calm", "trending", "volatile")
from ..units import STEP_MS  # noqa: E402
WINDOW = 0.005
NEAR = 0.10


def _paged(fetch, symbol, interval, start, end, page):
    rows, s = [], start
    while s <= end:
        got = fetch(symbol, interval, start_ms=s, end_ms=end, limit=page)
        rows += got
        if len(got) < page:
            break
        s = got[-1][0] + interval
    return rows


def bars_from_market(market: Market, symbol: str, start_ms: int, end_ms: int,
                     interval_ms: int = STEP_MS) -> dict:
    """Closed bars opening in [start, end − interval], as the feed would backfill them."""
    last_open = end_ms - interval_ms
    k = _paged(market.klines, symbol, interval_ms, start_ms, last_open, 1500)
    mk = {r[0]: r for r in _paged(market.mark_klines, symbol, interval_ms, start_ms, last_open, 1500)}
    oi = {}
    s = start_ms + interval_ms
    while s <= end_ms:
        got = market.open_interest_hist(symbol, interval_ms, start_ms=s, end_ms=end_ms, limit=500)
        oi.update({t: base for t, base, _ in got})
        if len(got) < 500:
            break
        s = got[-1][0] + interval_ms
    k = [r for r in k if r[6] < end_ms]  # closed bars only
    a = np.array([r[:11] for r in k], dtype=np.float64).reshape(-1, 11)
    t = a[:, 0].astype(np.int64)
    nan = float("nan")
    return {
        "time": t, "open": a[:, 1], "high": a[:, 2], "low": a[:, 3], "close": a[:, 4],
        "volume": a[:, 5], "quote_volume": a[:, 7], "taker_buy_quote_volume": a[:, 10],
        # the snapshot stamped T is the open interest at the close of the bar opening at T − Δ
        "open_interest": np.array([oi.get(int(x) + interval_ms, nan) for x in t]),
        "mark_high": np.array([mk[x][2] if x in mk else nan for x in t.tolist()]),
        "mark_low": np.array([mk[x][3] if x in mk else nan for x in t.tolist()]),
    }


def _covered(prices: np.ndarray, levels, window: float) -> np.ndarray:
    m = np.zeros(prices.size, bool)
    for lv in levels:
        m |= np.abs(prices - lv) <= window * lv
    return m


def _best_windows(prices, usd, ref, width, top, window):
    """Greedy: the ``top`` ±window windows (at bin centres) holding the most USD."""
    half = max(0, int(round(window * ref / width)))
    usd = usd.copy()
    total = 0.0
    for _ in range(top):
        c = np.concatenate([[0.0], np.cumsum(usd)])
        i = np.arange(usd.size)
        lo, hi = np.maximum(0, i - half), np.minimum(usd.size, i + half + 1)
        sums = c[hi] - c[lo]
        j = int(np.argmax(sums))
        if sums[j] <= 0:
            break
        total += sums[j]
        usd[lo[j]:hi[j]] = 0.0
    return total


def score(truth: dict, heatmap, top: int = 10, window: float = WINDOW) -> dict:
    """Compare one heatmap with one truth map (same bin width)."""
    prices = np.asarray(truth["prices"], dtype=np.float64)
    lu = np.asarray(truth["long_usd"], dtype=np.float64)
    su = np.asarray(truth["short_usd"], dtype=np.float64)
    ref = float(truth["price"])
    tot = lu + su
    total = float(tot.sum()) or math.nan
    levels = [lv.price for lv in heatmap.levels(top)]
    even = [ref * (1 + j / 100) for j in (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)]
    est = heatmap.totals()
    usd = heatmap.usd_tiers().sum(axis=0)  # (2, B): long, short
    near_m = np.abs(heatmap.prices / ref - 1) <= NEAR
    near_t = np.abs(prices / ref - 1) <= NEAR

    def ratio(a, b):
        return a / b if b > 0 else math.nan

    return {
        "share": float(tot[_covered(prices, levels, window)].sum()) / total,
        "even": float(tot[_covered(prices, even, window)].sum()) / total,
        "best": _best_windows(prices, tot, ref, float(truth["bin_width"]), top, window) / total,
        "long_ratio": ratio(est["long_usd"], float(lu.sum())),
        "short_ratio": ratio(est["short_usd"], float(su.sum())),
        "long_ratio_near": ratio(float(usd[0][near_m].sum()), float(lu[near_t].sum())),
        "short_ratio_near": ratio(float(usd[1][near_m].sum()), float(su[near_t].sum())),
        "true_long_usd": float(lu.sum()), "true_short_usd": float(su.sum()),
        "est_long_usd": est["long_usd"], "est_short_usd": est["short_usd"],
        "levels": levels, "price": ref,
    }


def fidelity_one(seed: int, regime: str, days: float = 7, symbol: str = "BTCUSDT",
                 now_ms: int = FIDELITY_NOW, top: int = 10) -> dict:
    t = time.perf_counter()
    m = Market(symbols=(symbol,), seed=seed, now_ms=now_ms, history_days=days, regime=regime)
    m.set_now(now_ms)  # a stopped clock: the score must not depend on how long the build took
    start = max(m.history_start, now_ms - int(days * 86_400_000))
    start = -(-start // STEP_MS) * STEP_MS
    bars = bars_from_market(m, symbol, start, now_ms)
    spec = m.symbols[symbol]
    w = choose_bin_width(float(bars["close"][-1]), spec.tick_size)
    hm = build_heatmap(bars, bin_width=w, tick_size=spec.tick_size)
    row = {"seed": seed, "regime": regime, "symbol": symbol, "days": days, "bars": int(bars["time"].size)}
    row.update(score(m.truth_map(symbol, bin_width=w), hm, top))
    row["seconds"] = time.perf_counter() - t
    return row


def fidelity_report(seeds=(1, 2, 3), regimes=REGIMES, days: float = 7, symbol: str = "BTCUSDT",
                    now_ms: int = FIDELITY_NOW, top: int = 10) -> list[dict]:
    """One row per seed × regime (see the module doc for the columns)."""
    return [fidelity_one(s, r, days, symbol, now_ms, top) for r in regimes for s in seeds]


def format_fidelity(rows: list[dict]) -> str:
    """A plain-text table, with the mean per regime and overall."""
    cols = [("regime", "{:<9}"), ("seed", "{:>4}"), ("share", "{:>6.1%}"), ("even", "{:>6.1%}"),
            ("best", "{:>6.1%}"), ("long_ratio", "{:>6.2f}"), ("short_ratio", "{:>6.2f}"),
            ("long_ratio_near", "{:>6.2f}"), ("short_ratio_near", "{:>6.2f}"),
            ("true_long_usd", "{:>8.0f}"), ("true_short_usd", "{:>8.0f}")]
    head = ["regime", "seed", "top10", "even10", "best10", "L est/true", "S est/true",
            "L ±10%", "S ±10%", "true L $M", "true S $M"]
    widths = [9, 4, 6, 6, 6, 10, 10, 6, 6, 9, 9]

    def line(r, label=None):
        out = []
        for (key, fmt), wd in zip(cols, widths):
            v = r.get(key, "")
            if key in ("true_long_usd", "true_short_usd") and isinstance(v, float):
                v = v / 1e6
            if key == "seed" and label:
                v = label
            s = fmt.format(v) if not isinstance(v, str) else v
            out.append(s.rjust(wd) if key != "regime" else s.ljust(wd))
        return "  ".join(out)

    def mean(rs, label):
        m = {"regime": rs[0]["regime"] if label == "mean" else "all"}
        for key, _ in cols[2:]:
            vals = [r[key] for r in rs if isinstance(r[key], float) and math.isfinite(r[key])]
            m[key] = float(np.mean(vals)) if vals else math.nan
        return line(m, label)

    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("-" * len(lines[0]))
    for regime in dict.fromkeys(r["regime"] for r in rows):
        rs = [r for r in rows if r["regime"] == regime]
        lines += [line(r) for r in rs]
        if len(rs) > 1:
            lines.append(mean(rs, "mean"))
    if len({r["regime"] for r in rows}) > 1:
        lines.append("-" * len(lines[0]))
        lines.append(mean(rows, "all"))
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Score LQ-1 against the simulated traders' truth.")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--regimes", default=",".join(REGIMES))
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--symbol", default="BTCUSDT")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    rows = fidelity_report(tuple(int(s) for s in a.seeds.split(",")), tuple(a.regimes.split(",")),
                           a.days, a.symbol)
    print(format_fidelity(rows))
    print(f"({len(rows)} runs, {time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
