"""Several venues on one grid: each venue's heatmap mapped onto the reference venue's prices.

Every venue runs its own LQ-1 state (consuming on its own prices, built by ``build_heatmap``
from its own steps). To add them up, a venue's bin at price ``P`` moves to the reference
venue's bin holding ``P · close_ref / close_venue``, the two closes taken at the same instant:
a band at the same underlying price lands in one bin whatever each venue's basis, instead of
being smeared over several. USD is kept as each venue valued it, so sums conserve USD exactly.

A venue without data, without open interest, or whose open interest is off by orders of
magnitude from the others (a units mistake: contracts for coins, USD for base) is dropped and
named in ``dropped`` and ``warnings``; never silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .engine import build_heatmap
from .grid import Grid
from .heatmap import Heatmap
from .levels import Level
from .params import ModelParams

#: a venue whose open interest (base units) differs from the anchor by more than this factor is
#: dropped. Real venues' BTC or ETH open interest in coins differ by ≤ ~5×; 20× is a units slip.
MAX_OI_RATIO = 20.0
_ROWS = 256  # columns mapped per chunk: keeps the temporaries in cache


@dataclass
class VenueHeatmap(Heatmap):
    """The sum of several venues' heatmaps on the reference venue's grid.

    ``state`` is the summed USD divided by the reference bin centres, so every ``Heatmap``
    method (``usd``, ``levels``, ``liquidation_map``, ``totals``) works on the sum unchanged.
    """

    venues: tuple[str, ...] = ()      # included, the reference venue first
    dropped: dict = field(default_factory=dict)  # venue → why it is not in the sum
    venue_usd: np.ndarray | None = None  # (V, tiers, 2, B) final USD per venue, all tiers
    ratios: dict = field(default_factory=dict)  # venue → price ratio of its final state
    sources: dict = field(default_factory=dict)  # venue → its own Heatmap

    @property
    def reference_venue(self) -> str:
        return self.venues[0]

    def usd_by_venue(self, side: str | None = None, tiers=None) -> np.ndarray:
        """Final USD per (venue, side, bin) under the filters: the stacked levels list."""
        tmask, smask = self._masks(side, tiers)
        return (self.venue_usd * (tmask[:, None, None] & smask[None, :, None])).sum(axis=1)

    def level_venues(self, level: Level) -> dict[str, float]:
        """USD of ``level`` per venue (its side, the bins from its low to its high edge)."""
        w, first = self.bin_width, self.prices[0]
        i0 = max(int(round((level.low + w / 2 - first) / w)), 0)  # edges → centres → bins
        i1 = int(round((level.high - w / 2 - first) / w))
        s = 0 if level.side == "long" else 1
        part = self.usd_by_venue()[:, s, i0:i1 + 1].sum(axis=1)
        return {v: float(x) for v, x in zip(self.venues, part)}

    def map_column(self, venue: str, column: np.ndarray, ratio: float | None = None) -> np.ndarray:
        """A (B_venue,) USD column of ``venue`` (e.g. its provisional newest column) on this
        grid; USD beyond this span is left out. ``ratio``: close_ref / close_venue now
        (default: the one of the final state)."""
        src = self.sources[venue]
        r = self.ratios[venue] if ratio is None else ratio
        idx = mapped_index(self.grid, src.prices, np.array([r]))[0] - self.bin_offset
        inside = (idx >= 0) & (idx < len(self.prices))
        return np.bincount(idx[inside], weights=np.asarray(column, dtype=np.float64)[inside],
                           minlength=len(self.prices))


def mapped_index(grid: Grid, prices: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """(R, B) absolute bin index on ``grid`` of every ``prices[j] · ratios[r]``.

    A float floor of ``P / w``: it differs from ``grid.index`` only within 1e-6 of a bin width
    of a boundary, which cannot matter for a basis mapping."""
    return np.floor(np.multiply.outer(ratios, prices / grid.width)).astype(np.int64)


def aggregate(heatmaps: Mapping[str, Heatmap | None], steps: Mapping[str, Mapping | None], *,
              reference: str | None = None, marks: Mapping[str, float] | None = None,
              failed: Mapping[str, str] | None = None,
              max_oi_ratio: float = MAX_OI_RATIO) -> VenueHeatmap:
    """Sum the venues' heatmaps on the reference venue's grid.

    ``heatmaps``: venue → its ``Heatmap`` (None: no data), in display order. ``steps``: venue →
    the bars it was built from (``time``, ``close``), for the price ratio of every column.
    ``reference``: the venue whose grid and times the sum uses (default the first included;
    the next one if it is dropped). ``marks``: venue → live mark price, for the ratio of the
    final state (default the closes of the last steps). ``failed``: venue → reason, venues the
    caller already knows to be broken (dropped with that reason).
    Raises ValueError when no venue is left, or when the venues' model parameters differ.
    """
    dropped = {v: r for v, r in (failed or {}).items() if v in heatmaps}
    ok: dict[str, tuple[Heatmap, Mapping]] = {}
    for v, hm in heatmaps.items():
        st = steps.get(v)
        if v in dropped:
            continue
        if hm is None or st is None or not len(st["time"]):
            dropped[v] = "no data"
        elif not (math.isfinite(hm.last_open_interest) and hm.last_open_interest > 0):
            dropped[v] = "no open interest"
        else:
            ok[v] = (hm, st)
    order = list(ok)
    if reference in ok:  # the reference first, the rest in the caller's order
        order.remove(reference)
        order.insert(0, reference)
    dropped.update(_oi_outliers({v: ok[v][0].last_open_interest for v in order}, max_oi_ratio))
    order = [v for v in order if v not in dropped]
    if not order:
        why = "; ".join(f"{v}: {r}" for v, r in dropped.items()) or "none given"
        raise ValueError(f"no venue to aggregate ({why})")
    ref_hm, ref_steps = ok[order[0]]
    p = ref_hm.params
    for v in order[1:]:
        q = ok[v][0].params
        if (q.leverages, q.weights) != (p.leverages, p.weights) or \
                not (np.array_equal(q.tier_mask, p.tier_mask) and np.array_equal(q.side_mask, p.side_mask)):
            raise ValueError(f"{v}: model parameters differ from {order[0]}'s; build every venue "
                             "with the same parameters")
    ref_at = _closes_at(ref_steps, ref_hm.interval_ms)

    # the final state and the history columns of every venue, as absolute reference-grid bins
    finals, cols, ratios = [], [], {}
    lo, hi = math.inf, -math.inf
    for v in order:
        hm, st = ok[v]
        at = _closes_at(st, hm.interval_ms)
        live_ref, live_v = _mark(marks, order[0]), _mark(marks, v)
        if live_ref and live_v:
            r_final = live_ref / live_v
        else:
            r_final = ref_at(hm.as_of) / at(hm.as_of)
        ratios[v] = float(r_final)
        fidx = mapped_index(ref_hm.grid, hm.prices, np.array([r_final]))[0]
        # each reference column takes the venue's column as of its time (none before its start)
        a = np.searchsorted(hm.times, ref_hm.times, side="right") - 1
        rows = np.flatnonzero(a >= 0)
        t = hm.times[a[rows]]
        r = ref_at(t) / at(t)
        finals.append(fidx)
        cols.append((rows, a[rows], r))
        ends = mapped_index(ref_hm.grid, hm.prices[[0, -1]], np.r_[r_final, r])
        if hm.grid == ref_hm.grid:  # room for every shift's slice (see _add_columns)
            shifts = ends - (hm.bin_offset + np.array([0, len(hm.prices) - 1]))
            ends = hm.bin_offset + np.array([shifts.min(), len(hm.prices) - 1 + shifts.max()])
        lo, hi = min(lo, int(ends[..., 0].min())), max(hi, int(ends[..., -1].max()))
    off, nb = int(lo), int(hi - lo) + 1
    grid = ref_hm.grid
    prices = grid.centre(np.arange(off, off + nb))

    ntiers = len(p.leverages)
    venue_usd = np.zeros((len(order), ntiers, 2, nb))
    columns = np.zeros((len(ref_hm.times), nb), dtype=p.dtype)
    for k, v in enumerate(order):
        hm = ok[v][0]
        usd = (hm.state * hm.prices).reshape(ntiers * 2, -1)
        key = (np.arange(ntiers * 2)[:, None] * nb + (finals[k] - off)[None, :]).ravel()
        venue_usd[k] = np.bincount(key, weights=usd.ravel(), minlength=ntiers * 2 * nb).reshape(
            ntiers, 2, nb)
        rows, src, r = cols[k]
        if v == order[0]:  # the reference on its own grid and times: the identity
            columns[:, hm.bin_offset - off: hm.bin_offset - off + len(hm.prices)] += hm.columns
        else:
            _add_columns(columns, hm, rows, src, r, grid, off)

    total = venue_usd.sum(axis=0)
    warnings = [f"{v}: {w}" for v in order for w in ok[v][0].warnings]
    warnings += [f"{v} left out of the sum: {r}" for v, r in dropped.items()]
    consumed, step_net = _per_reference_step(ref_steps, ok, order)
    accounting = {key: sum(ok[v][0].accounting[key] for v in order)
                  for key in ref_hm.accounting}
    return VenueHeatmap(
        params=p, grid=grid, bin_offset=off, prices=prices, times=ref_hm.times,
        columns=columns, state=total / prices, consumed=consumed, accounting=accounting,
        reference_price=_mark(marks, order[0]) or ref_hm.reference_price,
        start=ref_hm.start, as_of=ref_hm.as_of, interval_ms=ref_hm.interval_ms,
        warnings=warnings, step_net=step_net,
        last_open_interest=float(sum(ok[v][0].last_open_interest for v in order)),
        venues=tuple(order), dropped=dropped, venue_usd=venue_usd, ratios=ratios,
        sources={v: ok[v][0] for v in order},
    )


def build_venues(bars: Mapping[str, Mapping | None], params: ModelParams | None = None, *,
                 reference: str | None = None, threads: bool = False,
                 failed: Mapping[str, str] | None = None, **kwargs) -> VenueHeatmap:
    """Run LQ-1 for every venue's ``bars`` (None: no data) and ``aggregate`` them;
    ``failed``: venue → why its bars are missing (passed on to ``aggregate``).

    The other venues use the reference venue's bin width so their bins line up one to one
    (their own automatic width could differ near a 1-2-5 step). ``threads``: run the other
    venues' builds in threads. Off by default: the engine's per-step recursion holds the GIL,
    and on a busy 2-core machine threads were measured slower (benchmarks/bench_model.py).
    """
    p = params.replace(**kwargs) if params is not None else ModelParams(**kwargs)
    names = [v for v in bars if bars[v] is not None and len(bars[v]["time"])]
    ref = reference if reference in names else (names[0] if names else None)
    heatmaps: dict[str, Heatmap | None] = {v: None for v in bars}
    failed = dict(failed or {})

    def run(v, q):
        try:
            return build_heatmap(bars[v], q)
        except ValueError as e:
            if q is not p:  # the reference's width does not fit this venue: its own, then
                return run(v, p)
            failed[v] = str(e)
            return None

    if ref is not None:
        heatmaps[ref] = run(ref, p)
    rest = [v for v in names if v != ref]
    if heatmaps.get(ref) is not None and p.bin_width is None:
        q = p.replace(bin_width=heatmaps[ref].bin_width)
    else:
        q = p
    if threads and len(rest) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(rest)) as pool:
            for v, hm in zip(rest, pool.map(lambda v: run(v, q), rest)):
                heatmaps[v] = hm
    else:
        for v in rest:
            heatmaps[v] = run(v, q)
    return aggregate(heatmaps, bars, reference=ref, failed=failed)


# --------------------------------------------------------------------------- helpers

def _add_columns(out: np.ndarray, hm: Heatmap, rows, src, r, grid: Grid, off: int) -> None:
    """Add ``hm.columns[src]`` mapped with the ratios ``r`` into ``out[rows]``.

    On the same grid bin J moves by ``floor(½ + (J + ½)(r − 1))`` bins, the same for a whole
    row when its first and last bins move alike (the shift is monotone in J): one slice add
    per shift. A row whose shift steps along it adds one slice per run of equal shift, the
    runs found from where the shift steps; rows with the same runs are added together. A
    venue on another grid is scattered bin by bin."""
    nb, b = out.shape[1], len(hm.prices)
    if hm.grid != grid:
        for c0 in range(0, len(rows), _ROWS):
            sl = slice(c0, c0 + _ROWS)
            idx = mapped_index(grid, hm.prices, r[sl]) - off
            key = idx + (np.arange(idx.shape[0]) * nb)[:, None]
            add = np.bincount(key.ravel(), weights=hm.columns[src[sl]].ravel(),
                              minlength=idx.shape[0] * nb)
            out[rows[sl]] += add.reshape(idx.shape[0], nb).astype(out.dtype)
        return
    ends = mapped_index(grid, hm.prices[[0, -1]], r) - (hm.bin_offset + np.array([0, b - 1]))
    flat = ends[:, 0] == ends[:, 1]
    for d in np.unique(ends[flat, 0]):
        sel = np.flatnonzero(flat & (ends[:, 0] == d))
        a = hm.bin_offset + int(d) - off
        out[_run(rows[sel]), a:a + b] += hm.columns[_run(src[sel])]
    for up in (True, False):
        part = np.flatnonzero(~flat & ((r > 1) == up))
        if not part.size:
            continue
        rp, lo, hi = r[part], int(ends[part].min()), int(ends[part].max())
        # cuts[:, k], cuts[:, k + 1]: the ends of the run of bins whose shift is lo + k
        # (the shift rises along a row when r > 1, falls when r < 1)
        cuts = [np.full(len(part), 0 if up else b)]
        for d in range(lo, hi):
            # shift(J) = floor(½ + (J + ½)(r − 1)) ≥ d+1  ⟺  J ≥ or ≤ (d + ½)/(r − 1) − ½;
            # then one step either way where float rounding disagrees with mapped_index
            edge = (d + 0.5) / (rp - 1.0) - 0.5 - hm.bin_offset
            t = np.clip(np.ceil(edge) if up else np.floor(edge), -1, b).astype(np.int64)
            t = _settle(hm, grid, rp, t, d + 1, up)
            cuts.append(t if up else t + 1)
        cuts.append(np.full(len(part), b if up else 0))
        cuts = np.stack(cuts, axis=1)
        cuts = np.maximum.accumulate(cuts, axis=1) if up else np.minimum.accumulate(cuts, axis=1)
        # rows cut alike (a basis that drifts slowly: most of them) share their slice adds
        uniq, group = np.unique(cuts, axis=0, return_inverse=True)
        group = group.ravel()
        for g, cut in enumerate(uniq):
            sel = part[group == g]
            dest, srcs = _run(rows[sel]), _run(src[sel])
            for k in range(len(cut) - 1):
                s0, s1 = (int(cut[k]), int(cut[k + 1])) if up else (int(cut[k + 1]), int(cut[k]))
                if s1 > s0:
                    a = hm.bin_offset + lo + k - off
                    out[dest, a + s0:a + s1] += hm.columns[srcs, s0:s1]


def _run(idx: np.ndarray):
    """``idx`` as a slice when it is a run of consecutive rows (a view: no gather/scatter)."""
    if len(idx) and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _settle(hm: Heatmap, grid: Grid, r, t, d: int, up: bool):
    """The exact first (``up``) or last bin whose shift is ≥ d, from an estimate ``t`` that
    float rounding may have put one bin off."""
    b = len(hm.prices)

    def ge(j):  # shift(j) ≥ d, with shift as mapped_index computes it (bins outside: no)
        jc = np.clip(j, 0, b - 1)
        shift = np.floor(r * (hm.prices[jc] / grid.width)) - (hm.bin_offset + jc)
        return (j >= 0) & (j < b) & (shift >= d)
    if up:  # t = the first bin with shift ≥ d (b if none)
        t = np.where(ge(t - 1), t - 1, t)
        return np.where((t < b) & ~ge(t), t + 1, t)
    t = np.where(ge(t + 1), t + 1, t)  # t = the last bin with shift ≥ d (−1 if none)
    return np.where((t >= 0) & ~ge(t), t - 1, t)


def _oi_outliers(oi: dict[str, float], max_ratio: float) -> dict[str, str]:
    """Venues whose open interest is off from the anchor by more than ``max_ratio``: the median
    of three or more venues; with two, the first (the reference) is trusted."""
    if len(oi) < 2:
        return {}
    names = list(oi)
    if len(oi) >= 3:
        anchor, what = float(np.median(list(oi.values()))), "the venues' median"
    else:
        anchor, what = oi[names[0]], f"{names[0]}'s (the reference)"
    out = {}
    for v in names:
        f = max(oi[v] / anchor, anchor / oi[v])
        if f > max_ratio:
            out[v] = (f"open interest {oi[v]:.6g} (base units) is {f:,.0f}× off {what} "
                      f"{anchor:.6g}: more than {max_ratio:g}×, a units mistake, not a market")
    return out


def _closes_at(steps: Mapping, interval_ms: int):
    """t (ms) → the close of the last step ending at or before t (the first close before any)."""
    end = np.asarray(steps["time"], dtype=np.int64) + interval_ms
    close = np.asarray(steps["close"], dtype=np.float64)

    def at(t):
        i = np.searchsorted(end, t, side="right") - 1
        return close[np.maximum(i, 0)]
    return at


def _mark(marks, v: str) -> float | None:
    """The live mark of ``v`` if one was given and it is a price."""
    m = (marks or {}).get(v)
    return float(m) if m is not None and math.isfinite(m) and m > 0 else None


def _per_reference_step(ref_steps, ok, order):
    """Consumed (T, 2) and net n_t (T,) summed over venues on the reference venue's steps."""
    t_ref = np.asarray(ref_steps["time"], dtype=np.int64)
    consumed, net = np.zeros((len(t_ref), 2)), np.zeros(len(t_ref))
    for v in order:
        hm, st = ok[v]
        t = np.asarray(st["time"], dtype=np.int64)
        i = np.minimum(np.searchsorted(t_ref, t), len(t_ref) - 1)
        same = t_ref[i] == t
        consumed[i[same]] += hm.consumed[same]
        if hm.step_net is not None:
            net[i[same]] += hm.step_net[same]
    return consumed, net
