"""The simulated market (no I/O besides the optional cache, no asyncio): the API the simulated
exchange serves. See docs/sim-and-feeds.md §1; the dynamics are in ``engine.py`` and
``traders.py``, live events in ``render.py``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..model.grid import Grid, choose_bin_width
from .engine import COMPACT_EVERY, RECENT_MINUTES, REGIMES, SymbolEngine
from .render import Rendered
from .symbols import (CATALOGUE, DAY, MIN, SymbolSpec, cache_path, first_minute, history_start,
                      resolve)

__all__ = ["CATALOGUE", "Market", "SymbolSpec", "build_child"]

OI_HIST_DEPTH_MS = 30 * DAY  # Binance serves ~30 days of open-interest history


class Market:
    """Simulated traders on several symbols; every query answers as of ``now_ms()``.

    At construction each symbol is generated from ``history_days`` before ``now_ms`` (its
    listing if later; ``start_ms`` if given) up to the minute holding ``now_ms``; queries and
    ``advance()`` generate on as the clock runs. ``regime`` chooses the exogenous price
    process (``mixed``, ``calm``, ``trending``, ``volatile``); ``specs`` adds or overrides
    symbols (e.g. a later ``onboard_ms``); ``symbols`` may also hold ``SymbolSpec`` objects.
    With ``cache_dir`` the generated state is saved and reused (per seed, symbol, regime,
    start and parameters): a run cached up to a day earlier is continued (``history_start``).
    Unknown symbols raise ``ValueError`` naming them.
    """

    def __init__(self, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), seed=1, *, now_ms=None,
                 history_days=31.0, time_scale=1.0, cache_dir=None, regime="mixed", specs=None,
                 start_ms=None):
        if regime not in REGIMES:
            raise ValueError(f"regime must be one of {', '.join(REGIMES)}, got {regime!r}")
        if not (history_days > 0 and math.isfinite(history_days)):
            raise ValueError(f"history_days must be a positive number, got {history_days!r}")
        if not (time_scale > 0 and math.isfinite(time_scale)):
            raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
        self.seed, self.regime, self.time_scale = int(seed), regime, float(time_scale)
        now0 = int(now_ms) if now_ms is not None else int(time.time() * 1000) // MIN * MIN
        self._now0, self._mono0, self._manual = now0, time.monotonic(), None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.history_start = int(start_ms) if start_ms is not None else history_start(
            now0, history_days, self.seed, regime, self.cache_dir)
        self._catalogue = dict(CATALOGUE)
        for s in (specs.values() if isinstance(specs, dict) else specs or ()):
            self._catalogue[s.symbol] = s
        self.symbols: dict[str, SymbolSpec] = {}
        self._engines: dict[str, SymbolEngine] = {}
        for name in symbols:
            s = self._resolve(name)
            self.symbols[s.symbol] = s
        self.build_seconds: dict[str, float] = {}
        self.cache_hits: list[str] = []
        jobs = [(s, self.seed, self.regime, self.history_start, now0, self.cache_dir)
                for s in self.symbols.values()]
        self.add(_build_all(jobs, (now0 - self.history_start) // MIN))
        self._emitted = now0
        self._rendered: dict[tuple[str, int], Rendered] = {}
        if not (now_ms is None and self.time_scale == 1.0):
            # the clock starts when the market is ready (a real-time market keeps wall time)
            self._mono0 = time.monotonic()

    def _resolve(self, name) -> SymbolSpec:
        return resolve(name, self._now0, self._catalogue)

    # -- symbols added later -----------------------------------------------------------------

    def jobs(self, symbols) -> list[tuple]:
        """What generating the symbols the market does not hold yet takes (same history start
        and cache, up to now), picklable: for a worker thread (``prepare``) or a process
        (``build_child``). Unknown symbols raise ``ValueError`` naming them."""
        now = self.now_ms()
        specs = [self._resolve(name) for name in symbols]
        return [(s, self.seed, self.regime, self.history_start, now, self.cache_dir)
                for s in specs if s.symbol not in self._engines]

    def prepare(self, symbols, progress=None) -> list:
        """Generate symbols the market does not hold yet without touching the market (safe in
        a worker thread while it serves); ``add()`` then makes them part of it.
        ``progress(symbol, done, total)`` (minutes) is called now and then."""
        return [_build_engine(*job, progress) for job in self.jobs(symbols)]

    def add(self, built) -> None:
        """Take symbols ``prepare()`` or ``build_child`` generated (on the thread that queries
        the market); they catch up with the clock at the next query."""
        for eng, hit, secs in built:
            sym = eng.spec.symbol
            if sym in self._engines:
                continue
            self.symbols[sym] = eng.spec
            self._engines[sym] = eng
            self.build_seconds[sym] = secs
            if hit:
                self.cache_hits.append(sym)

    # -- the clock ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        if self._manual is not None:
            return self._manual
        return self._now0 + int((time.monotonic() - self._mono0) * 1000 * self.time_scale)

    def set_now(self, ms) -> None:
        """A manual clock (tests). ``set_now(None)`` lets it run again from where it stands."""
        if ms is None:
            if self._manual is not None:
                self._now0, self._mono0, self._manual = self._manual, time.monotonic(), None
            return
        self._manual = int(ms)

    def _sync(self, now: int | None = None) -> int:
        now = self.now_ms() if now is None else now
        end_k = now // MIN + 1
        for eng in self._engines.values():
            if eng.k < end_k:
                eng.run_to(end_k)
        return now

    def _eng(self, symbol: str) -> SymbolEngine:
        try:
            return self._engines[symbol]
        except KeyError:
            raise ValueError(f"unknown symbol {symbol!r}") from None

    def _render(self, symbol: str, k: int) -> Rendered | None:
        key = (symbol, k)
        r = self._rendered.get(key)
        if r is None:
            eng = self._engines[symbol]
            if k not in eng.recent:
                return None
            r = self._rendered[key] = Rendered(eng, k, symbol)
            for old in [x for x in self._rendered if x[1] < k - 3]:
                del self._rendered[old]
        return r

    # -- live events ---------------------------------------------------------------------------

    def advance(self) -> list:
        """Generate up to ``now_ms()``; the events since the last call, in time order."""
        now = self._sync()
        after = self._emitted
        if now <= after:
            return []
        out = []
        last_k = now // MIN
        for sym, eng in self._engines.items():
            k_from = max(after // MIN, last_k - RECENT_MINUTES + 1, eng.k0)
            for k in range(k_from, last_k + 1):
                r = self._render(sym, k)
                if r is not None:
                    out.extend(r.events(after, now, self._tape_row(eng, k)))
        self._emitted = now
        out.sort(key=lambda e: e[2])
        return out

    # -- REST-like queries ---------------------------------------------------------------------

    def _tape_row(self, eng: SymbolEngine, k: int) -> list:
        t, i, step = eng.tape, k - eng.k0, eng.step
        t0 = k * MIN
        return [t0, float(t["open"][i]), float(t["high"][i]), float(t["low"][i]),
                float(t["close"][i]), float(t["volume"][i] * step), t0 + MIN - 1,
                float(t["quote"][i]), int(t["trades"][i]), float(t["taker"][i] * step),
                float(t["tb_quote"][i])]

    def _bar_opens(self, eng, iv, start_ms, end_ms, limit, first_ms, now):
        if iv <= 0 or iv % MIN:
            raise ValueError(f"interval must be a positive multiple of one minute, got {iv!r} ms")
        if limit is None or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        lo = first_ms // iv * iv  # the bar holding the first minute (may be partial)
        hi = now // iv * iv
        if end_ms is not None:
            hi = min(hi, int(end_ms) // iv * iv)
        if start_ms is not None:
            lo = max(lo, -(-int(start_ms) // iv) * iv)
            hi = min(hi, lo + (limit - 1) * iv)
        else:
            lo = max(lo, hi - (limit - 1) * iv)
        if lo > hi:
            return None
        return lo, hi

    def _aggregate(self, symbol, interval_ms, start_ms, end_ms, limit, mark: bool) -> list:
        eng = self._eng(symbol)
        now = self._sync()
        iv = int(interval_ms)
        first_ms = eng.k0 * MIN
        span = self._bar_opens(eng, iv, start_ms, end_ms, limit, first_ms, now)
        if span is None:
            return []
        lo, hi = span
        now_k = now // MIN
        k_a = max(lo, first_ms) // MIN
        k_b = min(hi + iv, (now_k + 1) * MIN) // MIN  # minutes [k_a, k_b)
        closed_b = min(k_b, now_k)
        rows: dict[int, list] = {}
        if closed_b > k_a:
            i0, i1 = k_a - eng.k0, closed_b - eng.k0
            t = eng.tape
            ks = np.arange(k_a, closed_b)
            grp = (ks * MIN - lo) // iv
            starts = np.r_[0, np.nonzero(np.diff(grp))[0] + 1]
            g = grp[starts]
            names = ("mopen", "mhigh", "mlow", "mclose") if mark else ("open", "high", "low", "close")
            o = t[names[0]][i0:i1][starts]
            h = np.maximum.reduceat(t[names[1]][i0:i1], starts)
            l_ = np.minimum.reduceat(t[names[2]][i0:i1], starts)
            ends = np.r_[starts[1:], i1 - i0] - 1
            c = t[names[3]][i0:i1][ends]
            if mark:
                cnt = np.diff(np.r_[starts, i1 - i0]) * 60
                for j in range(g.size):
                    ot = lo + int(g[j]) * iv
                    rows[ot] = [ot, float(o[j]), float(h[j]), float(l_[j]), float(c[j]), 0.0,
                                ot + iv - 1, 0.0, int(cnt[j]), 0.0, 0.0]
            else:
                step = eng.step
                v = np.add.reduceat(t["volume"][i0:i1], starts)
                q = np.add.reduceat(t["quote"][i0:i1], starts)
                n = np.add.reduceat(t["trades"][i0:i1], starts)
                tb = np.add.reduceat(t["taker"][i0:i1], starts)
                tq = np.add.reduceat(t["tb_quote"][i0:i1], starts)
                for j in range(g.size):
                    ot = lo + int(g[j]) * iv
                    rows[ot] = [ot, float(o[j]), float(h[j]), float(l_[j]), float(c[j]),
                                float(v[j] * step), ot + iv - 1, float(q[j]), int(n[j]),
                                float(tb[j] * step), float(tq[j])]
        if k_b > now_k >= k_a:  # the forming minute, as of now
            r = self._render(symbol, now_k)
            if mark:
                i = now_k - eng.k0
                prev = float(eng.tape["mclose"][i - 1]) if i > 0 else float(eng.tape["mopen"][i])
                part = r.mark_row(now, prev)
            else:
                part = r.row(now)
            ot = now_k * MIN // iv * iv
            if ot in rows:
                row = rows[ot]
                row[2], row[3], row[4] = max(row[2], part[2]), min(row[3], part[3]), part[4]
                for j in (5, 7, 8, 9, 10):
                    row[j] = row[j] + part[j]
            else:
                rows[ot] = [ot] + part[1:6] + [ot + iv - 1] + part[7:]
        return [rows[k] for k in sorted(rows)]

    def klines(self, symbol, interval_ms, start_ms=None, end_ms=None, limit=500) -> list:
        """Kline rows ``[open_ms, o, h, l, c, volume, close_ms, quote_volume, trades,
        taker_base, taker_quote]``, oldest first; bars open at multiples of the interval; with
        ``start_ms`` the first ``limit`` bars opening at or after it, else the most recent
        ``limit`` opening at or before ``end_ms`` (or now); the last may be forming."""
        return self._aggregate(symbol, interval_ms, start_ms, end_ms, limit, mark=False)

    def mark_klines(self, symbol, interval_ms, start_ms=None, end_ms=None, limit=500) -> list:
        """Mark-price klines, same rows (volume fields 0, trades = mark updates)."""
        return self._aggregate(symbol, interval_ms, start_ms, end_ms, limit, mark=True)

    def _oi_at(self, eng, k: int) -> float:
        """Open interest (base) at the instant ``k`` minutes (the end of minute k − 1)."""
        i = k - eng.k0
        units = eng.oi_start if i <= 0 else int(eng.tape["oi"][i - 1])
        return units * eng.step

    def open_interest(self, symbol) -> tuple[float, int]:
        eng = self._eng(symbol)
        now = self._sync()
        k = now // MIN
        a, b = self._oi_at(eng, k), self._oi_at(eng, k + 1)
        frac = (now - k * MIN) / MIN
        units = round((a + (b - a) * frac) / eng.step)
        return units * eng.step, now

    def open_interest_hist(self, symbol, period_ms, start_ms=None, end_ms=None, limit=30) -> list:
        """``(T, base, usd)``: open interest at the instant T, T a multiple of the period,
        within the latest ~30 days; oldest first; ``limit`` semantics as ``klines``."""
        eng = self._eng(symbol)
        now = self._sync()
        per = int(period_ms)
        if per <= 0 or per % (5 * MIN):
            raise ValueError(f"period must be a positive multiple of 5 minutes, got {period_ms!r} ms")
        first = max(eng.k0 * MIN, now - OI_HIST_DEPTH_MS + 1)
        lo = -(-first // per) * per
        hi = now // per * per
        if end_ms is not None:
            hi = min(hi, int(end_ms) // per * per)
        if start_ms is not None:
            lo = max(lo, -(-int(start_ms) // per) * per)
            hi = min(hi, lo + (limit - 1) * per)
        else:
            lo = max(lo, hi - (limit - 1) * per)
        out = []
        t = eng.tape
        for T in range(lo, hi + 1, per):
            k = T // MIN
            base = self._oi_at(eng, k)
            i = k - eng.k0
            mark = float(t["mclose"][i - 1]) if i > 0 else float(t["mopen"][0])
            out.append((T, base, base * mark))
        return out

    def mark_price(self, symbol) -> tuple[float, float, int]:
        eng = self._eng(symbol)
        now = self._sync()
        k = now // MIN
        r = self._render(symbol, k)
        got = r.last_mark(now) if r is not None else None
        if got is not None:
            return got
        i = k - eng.k0
        if i <= 0:
            return float(eng.tape["mopen"][0]), float(eng.tape["index"][0]), now
        return float(eng.tape["mclose"][i - 1]), float(eng.tape["index"][i - 1]), k * MIN - 1

    def ticker_24h(self, symbol) -> dict:
        eng = self._eng(symbol)
        now = self._sync()
        rows = self._aggregate(symbol, MIN, now - DAY + MIN, None, 1440, mark=False)
        o = rows[0][1]
        last = rows[-1][4]
        vol = sum(r[5] for r in rows)
        quote = sum(r[7] for r in rows)
        count = sum(r[8] for r in rows)
        k = now // MIN
        r = self._render(symbol, k)
        c = int(np.searchsorted(r.t, now, side="right")) if r is not None else 0
        last_qty = float(r.units[c - 1] * eng.step) if c else 0.0
        last_id = int(eng.tape["first_id"][k - eng.k0]) + c - 1
        return {
            "symbol": symbol, "priceChange": last - o,
            "priceChangePercent": (last / o - 1) * 100 if o else 0.0,
            "weightedAvgPrice": quote / vol if vol else last, "lastPrice": last,
            "lastQty": last_qty, "openPrice": o, "highPrice": max(r_[2] for r_ in rows),
            "lowPrice": min(r_[3] for r_ in rows), "volume": vol, "quoteVolume": quote,
            "openTime": now - DAY, "closeTime": now, "firstId": last_id - count + 1,
            "lastId": last_id, "count": count,
        }

    # -- ground truth --------------------------------------------------------------------------

    def positions(self, symbol) -> dict:
        """The open positions as of the start of the current minute (arrays; qty in base)."""
        eng = self._eng(symbol)
        self._sync()
        snap = dict(eng.snap[1])
        snap["qty"] = snap.pop("units") * eng.step
        return snap

    def truth_map(self, symbol, bin_width=None) -> dict:
        """The traders' real liquidation map now: USD (qty × liquidation price) by price bin
        and side, over the span of bins holding anything (JSON-ready lists)."""
        eng = self._eng(symbol)
        pos = self.positions(symbol)
        price = self.mark_price(symbol)[0]
        w = float(bin_width) if bin_width else choose_bin_width(price, eng.tick)
        grid = Grid.from_width(w)
        liq, usd = pos["liq"], pos["qty"] * pos["liq"]
        idx = grid.index(liq) if liq.size else np.zeros(0, np.int64)
        lg = pos["side"] > 0
        if idx.size:
            off = int(idx.min())
            nb = int(idx.max()) - off + 1
            long_usd = np.bincount(idx[lg] - off, usd[lg], minlength=nb)
            short_usd = np.bincount(idx[~lg] - off, usd[~lg], minlength=nb)
            prices = grid.centre(np.arange(off, off + nb))
        else:
            long_usd = short_usd = prices = np.zeros(0)
        return {"prices": prices.tolist(), "long_usd": long_usd.tolist(),
                "short_usd": short_usd.tolist(), "bin_width": w, "price": price,
                "time": self.now_ms(), "positions": int(liq.size)}

    def liquidations(self, symbol, start_ms=None, end_ms=None) -> dict:
        """Every forced close so far (arrays: time, side of the order 'SELL' (a long) /
        'BUY', qty, price (the bankruptcy price = the order's limit), avg_price, liq_price
        (where the mark crossed)), up to now."""
        eng = self._eng(symbol)
        now = self._sync()
        lq = eng.liquidations()
        m = lq["time"] <= now
        if start_ms is not None:
            m &= lq["time"] >= start_ms
        if end_ms is not None:
            m &= lq["time"] <= end_ms
        return {"time": lq["time"][m], "side": np.where(lq["side"][m] == 0, "SELL", "BUY"),
                "qty": lq["units"][m] * eng.step, "price": lq["bk"][m], "avg_price": lq["avg"][m],
                "liq_price": lq["liq"][m]}


# -- construction and the cache ----------------------------------------------------------------

PARALLEL_MIN_MINUTES = 20_000  # a cold build this long per symbol is worth a process each


def _build_engine(spec: SymbolSpec, seed: int, regime: str, history_start: int, now: int,
                  cache_dir: Path | None, progress=None):
    """Generate one symbol from its start (or its cached state) to the minute holding ``now``.

    The cache holds the state at the last compaction boundary before ``now``; a later run
    (``history_start`` picks the cached start for up to a day) loads it and generates only the
    rest.
    ``progress(symbol, done, total)`` (minutes) is called at the start, at each compaction
    boundary and at the end.
    """
    t = time.perf_counter()
    start = first_minute(spec, history_start)
    listed_before = spec.onboard_ms is None or spec.onboard_ms < history_start
    eng = SymbolEngine(spec, seed, regime, start // MIN, listed_before)
    end_k = now // MIN + 1
    checkpoint, hit = None, False
    if cache_dir is not None:
        path = cache_path(spec, seed, regime, history_start, cache_dir)
        loaded = eng.k
        if path.exists():
            try:
                with np.load(path) as z:
                    if eng.k < _meta_k(z) <= end_k:
                        eng.load(z)
                        loaded, hit = eng.k, True
            except (OSError, ValueError, KeyError):
                pass  # a stale or broken cache is rebuilt
        save_k = (end_k - 2) // COMPACT_EVERY * COMPACT_EVERY
        if save_k > loaded:
            def checkpoint(e, _k=save_k, _p=path):
                if e.k == _k:
                    _save(e, _p)
    if progress is not None:
        k0, save = eng.k, checkpoint

        def checkpoint(e):  # noqa: F811 - the cache's checkpoint, and progress
            if save is not None:
                save(e)
            progress(spec.symbol, e.k - k0, end_k - k0)

        progress(spec.symbol, 0, end_k - k0)
    eng.run_to(end_k, checkpoint=checkpoint)
    if progress is not None:
        progress(spec.symbol, end_k - k0, end_k - k0)
    return eng, hit, time.perf_counter() - t


def build_child() -> None:
    """A child process's main (``python -c "from liqtui.sim.market import build_child;
    build_child()"``): a pickled ``jobs()`` item on stdin → the built symbol for ``add`` (or
    the exception) pickled on stdout; ``progress DONE TOTAL`` lines (minutes) on stderr."""
    import pickle
    import sys

    job = pickle.load(sys.stdin.buffer)

    def report(_symbol, done, total):
        print(f"progress {done} {total}", file=sys.stderr, flush=True)

    try:
        out = _build_engine(*job, report)
    except Exception as e:  # noqa: BLE001 - the parent decides
        out = e
    pickle.dump(out, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()


def _build_job(job):
    return _build_engine(*job)


def sim_workers() -> int:
    """``LIQTUI_SIM_WORKERS`` (default 8): processes that build symbols at once; a value that
    is not a whole number ≥ 1 is a ValueError naming the variable and the value."""
    raw = os.environ.get("LIQTUI_SIM_WORKERS", "8")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"LIQTUI_SIM_WORKERS is {raw!r}: expected a whole number ≥ 1")
    return n


def _build_all(jobs, minutes: int):
    """Build the symbols, in parallel processes when it pays (a long cold build, several
    cores, a platform that can fork); otherwise one after the other."""
    workers = min(len(jobs), os.cpu_count() or 1, sim_workers())
    if workers > 1 and minutes >= PARALLEL_MIN_MINUTES:
        cold = [j for j in jobs if not _cached(j)]
        if len(cold) > 1:
            try:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor
                ctx = mp.get_context("fork")
                with ProcessPoolExecutor(min(workers, len(cold)), mp_context=ctx) as pool:
                    built = dict(zip((j[0].symbol for j in cold), pool.map(_build_job, cold)))
                return [built[j[0].symbol] if j[0].symbol in built else _build_engine(*j)
                        for j in jobs]
            except (ValueError, OSError, ImportError):
                pass  # no fork here: build in this process
    return [_build_engine(*j) for j in jobs]


def _cached(job) -> bool:
    spec, seed, regime, history_start, _now, cache_dir = job
    return cache_dir is not None and cache_path(spec, seed, regime, history_start, cache_dir).exists()


def _meta_k(z) -> int:
    return json.loads(str(z["meta"]))["scalars"]["k"]


def _save(eng: SymbolEngine, path: Path) -> None:
    """Write the engine state atomically (a concurrent reader sees the old or the new file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **eng.state())
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation only
