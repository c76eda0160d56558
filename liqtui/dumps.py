"""Readers for Binance's public data dumps (data.binance.vision, USDⓈ-M futures).

``load_dumps(klines, metrics)`` reads kline and metrics files (``.csv``, or ``.zip`` holding one
CSV), merges overlapping files, joins open interest onto the bars as-of their close and returns
the arrays ``build_heatmap`` takes. Every user mistake raises ``DumpError`` with a one-line
message naming the file, the line and what was expected.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import warnings as _warnings
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .units import HOUR, utc
from .units import format_duration as duration

KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
# model key -> kline column name (the columns we use; the others only have to be present)
KLINE_FIELDS = {
    "time": "open_time", "open": "open", "high": "high", "low": "low", "close": "close",
    "volume": "volume", "quote_volume": "quote_volume",
    "taker_buy_quote_volume": "taker_buy_quote_volume",
}
METRICS_COLUMNS = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value")
BAR_KEYS = (
    "time", "open", "high", "low", "close", "volume", "quote_volume",
    "taker_buy_quote_volume", "open_interest",
)
MAX_OI_AGE_MS = HOUR  # an open-interest snapshot older than this is unknown (NaN)
MICROSECONDS_ABOVE = 1e14  # ms timestamps are ~1.7e12; Binance's newer dumps use µs (~1.7e15)
MAX_GAP_LINES = 5  # gaps named one by one; the rest are summarised

_NAME_RE = re.compile(r"^([A-Z0-9]+)-(\d+[smhdwM])-")


class DumpError(ValueError):
    """Bad input file. The message is one line naming the file, the line and what was expected."""


@dataclass
class Dumps:
    bars: dict[str, np.ndarray]  # exactly BAR_KEYS, equal length, time strictly increasing
    symbol: str
    interval_ms: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Table:
    """Rows of one or more files, with where each row came from (for error messages)."""

    names: list[str]
    fidx: np.ndarray  # file index per row
    line: np.ndarray  # 1-based line number per row
    time: np.ndarray  # int64 ms
    values: np.ndarray  # (rows, k) float64


# ---------------------------------------------------------------------------- reading files


def _read_text(path) -> tuple[str, str]:
    """(display name, text) of a CSV file or of the single CSV inside a zip."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DumpError(f"{name}: no such file") from None
    except OSError as e:
        raise DumpError(f"{name}: cannot read ({e.strerror or e})") from None
    # Sniff the content, not the extension: a renamed zip still works, a fake one is named.
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                members = [
                    m for m in z.namelist()
                    if m.lower().endswith(".csv") and not m.startswith("__MACOSX/")
                ]
                if len(members) != 1:
                    found = ", ".join(members) if members else "none"
                    raise DumpError(f"{name}: expected a zip holding one .csv file, found {found}")
                member = members[0]
                data = z.read(member)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                RuntimeError, NotImplementedError) as e:
            raise DumpError(f"{name}: not a readable zip archive ({e})") from None
        name = f"{name}:{member}"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DumpError(
            f"{name} line {line}: not text (byte {data[e.start]:#04x}), expected a CSV file"
        ) from None
    return name, text


def _read_rows(path) -> tuple[str, list[list[str]], list[int]]:
    name, text = _read_text(path)
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    try:
        for row in reader:
            if row:  # blank lines (e.g. a trailing one) are not rows
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as e:
        raise DumpError(f"{name} line {reader.line_num}: not valid CSV ({e})") from None
    return name, rows, lines


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _header_index(name, header, wanted, expected_what) -> list[int]:
    cols = [h.strip().lower() for h in header]
    missing = [w for w in wanted if w not in cols]
    if len(missing) == len(wanted):  # not a header at all: a broken first row
        got = ",".join(header)
        got = got if len(got) <= 60 else got[:57] + "..."
        raise DumpError(
            f"{name} line 1: {got!r} is neither a header nor a data row, expected {expected_what}"
        )
    if missing:
        raise DumpError(
            f"{name} line 1: header has no column {missing[0]!r}, expected {expected_what}"
        )
    return [cols.index(w) for w in wanted]


def _numbers(name, rows, lines, j, colname, *, positive=False) -> np.ndarray:
    """Column j as float64; a bad field raises naming its line."""
    col = [r[j] for r in rows]
    try:
        a = np.array(col, dtype=np.float64)
    except ValueError:
        a = None
    if a is not None and np.isfinite(a).all() and ((a > 0) if positive else (a >= 0)).all():
        return a
    # slow path, only on error: find the first bad field
    for r, line in zip(rows, lines):
        s = r[j]
        try:
            x = float(s)
        except ValueError:
            raise DumpError(
                f"{name} line {line}: field {j + 1} ({colname}) is {s!r}, expected a number"
            ) from None
        if not math.isfinite(x) or x < 0 or (positive and x == 0):
            what = "a positive number" if positive else "a number ≥ 0"
            raise DumpError(
                f"{name} line {line}: field {j + 1} ({colname}) is {s!r}, expected {what}"
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _epoch_ms(name, rows, lines, j, colname) -> np.ndarray:
    """Integer epoch timestamps; values above 1e14 are microseconds."""
    t = _numbers(name, rows, lines, j, colname, positive=True)
    # an integer, and a time in ms or µs before the year 3000 (1e23 overflowed the cast)
    bad = np.flatnonzero((t != np.floor(t)) | (t >= 3.3e16))
    if bad.size:
        i = bad[0]
        raise DumpError(
            f"{name} line {lines[i]}: field {j + 1} ({colname}) is {rows[i][j]!r}, "
            "expected an integer epoch time in ms"
        )
    t = t.astype(np.int64)
    return np.where(t > MICROSECONDS_ABOVE, t // 1000, t)


def _read_klines_file(path):
    name, rows, lines = _read_rows(path)
    if not rows:
        raise DumpError(f"{name}: file is empty, expected kline rows ({','.join(KLINE_COLUMNS)})")
    if _is_number(rows[0][0]):
        idx = [KLINE_COLUMNS.index(c) for c in KLINE_FIELDS.values()]
        ncols = len(KLINE_COLUMNS)
    else:
        idx = _header_index(name, rows[0], KLINE_FIELDS.values(), ",".join(KLINE_COLUMNS))
        ncols = len(rows[0])
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise DumpError(f"{name}: file has a header but no rows, expected kline rows")
    for r, line in zip(rows, lines):
        if len(r) != ncols:
            raise DumpError(
                f"{name} line {line}: {len(r)} fields, expected {ncols} ({','.join(KLINE_COLUMNS)})"
            )
    cols = list(KLINE_FIELDS.values())
    time = _epoch_ms(name, rows, lines, idx[0], cols[0])
    values = np.column_stack([
        _numbers(name, rows, lines, j, c, positive=c in ("open", "high", "low", "close"))
        for j, c in zip(idx[1:], cols[1:])
    ])
    return name, time, values, lines


def _parse_create_time(name, rows, lines, j) -> np.ndarray:
    col = [r[j].strip() for r in rows]
    if col and _is_number(col[0]):  # some dumps stamp epoch ms instead of a date
        return _epoch_ms(name, rows, lines, j, "create_time")
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # numpy warns about a trailing 'Z'; it is UTC anyway
            t = np.array(col, dtype="datetime64[ms]")
    except ValueError:
        t = None
    if t is not None and not np.isnat(t).any():
        return t.astype(np.int64)
    for s, line in zip(col, lines):
        try:
            ok = not np.isnat(np.datetime64(s.rstrip("Z"), "ms"))
        except ValueError:
            ok = False
        if not ok:
            raise DumpError(
                f"{name} line {line}: field {j + 1} (create_time) is {s!r}, "
                "expected a UTC time like 2024-05-01 00:05:00"
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _read_metrics_file(path):
    name, rows, lines = _read_rows(path)
    expected = ",".join(METRICS_COLUMNS)
    if not rows:
        raise DumpError(f"{name}: file is empty, expected metrics rows ({expected},…)")
    first = rows[0][0].strip()
    if first.lower() == "create_time" or not (first[:1].isdigit()):
        idx = _header_index(name, rows[0], METRICS_COLUMNS, f"{expected},…")
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise DumpError(f"{name}: file has a header but no rows, expected metrics rows")
    else:
        idx = [0, 1, 2, 3]
    need = max(idx) + 1  # trailing ratio columns may be missing or empty
    for r, line in zip(rows, lines):
        if len(r) < need:
            raise DumpError(f"{name} line {line}: {len(r)} fields, expected at least {need} ({expected},…)")
    time = _parse_create_time(name, rows, lines, idx[0])
    symbol = ""
    for r, line in zip(rows, lines):
        s = r[idx[1]].strip()
        if s and symbol and s != symbol:
            raise DumpError(
                f"{name} line {line}: field {idx[1] + 1} (symbol) is {s!r}, "
                f"expected {symbol!r} like the rows above (one symbol per run)"
            )
        symbol = symbol or s
    values = np.column_stack([
        _numbers(name, rows, lines, idx[2], "sum_open_interest"),
        _numbers(name, rows, lines, idx[3], "sum_open_interest_value"),
    ])
    return name, time, values, lines, symbol or None


# ---------------------------------------------------------------------------- merging


def _concat(parts) -> _Table:
    names = [p[0] for p in parts]
    return _Table(
        names=names,
        fidx=np.concatenate([np.full(len(p[1]), i, dtype=np.int64) for i, p in enumerate(parts)]),
        line=np.concatenate([np.asarray(p[3], dtype=np.int64) for p in parts]),
        time=np.concatenate([p[1] for p in parts]),
        values=np.concatenate([p[2] for p in parts]),
    )


def _dedupe(tab: _Table) -> tuple[_Table, int]:
    """Sort by time; for equal times keep the row read last (the later file). Returns the number
    of times whose duplicates disagreed."""
    order = np.lexsort((np.arange(len(tab.time)), tab.time))  # stable: file order, then line
    t = tab.time[order]
    keep = np.ones(len(t), dtype=bool)
    keep[:-1] = t[1:] != t[:-1]
    kept_pos = np.flatnonzero(keep)
    group = np.searchsorted(kept_pos, np.arange(len(t)))  # each row -> its group's kept row
    v = tab.values[order]
    differ = (v != v[kept_pos[group]]).any(axis=1) & ~keep
    n_differ = int(np.unique(t[differ]).size)
    sel = order[keep]
    return _Table(tab.names, tab.fidx[sel], tab.line[sel], tab.time[sel], tab.values[sel]), n_differ


def _where(tab: _Table, i: int) -> str:
    return f"{tab.names[tab.fidx[i]]} line {tab.line[i]}"


def _utc(ms: int) -> str:
    return utc(ms, seconds=bool(int(ms) // 1000 % 60))  # seconds only where there are some


def _symbol_from_name(name: str) -> str | None:
    base = os.path.basename(name.split(":")[-1])
    m = _NAME_RE.match(base)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------- public


def load_dumps(klines, metrics) -> Dumps:
    """Read kline and metrics files into the arrays the model takes (see module docstring)."""
    if not klines:
        raise DumpError("no klines file given")
    if not metrics:
        raise DumpError("no metrics file given")
    warns: list[str] = []

    kparts = [_read_klines_file(p) for p in klines]
    kl, n_differ = _dedupe(_concat(kparts))
    if n_differ:
        warns.append(
            f"{n_differ} bars appear more than once with different values; kept the later file's"
        )
    if len(kl.time) < 2:
        raise DumpError(f"{kl.names[0]}: only one bar, expected at least two to tell the bar interval")
    diffs = np.diff(kl.time)
    steps, counts = np.unique(diffs, return_counts=True)
    interval = int(steps[np.argmax(counts)])  # the most common spacing (ties: the smallest)
    phases, counts = np.unique(kl.time % interval, return_counts=True)
    off = np.flatnonzero(kl.time % interval != phases[np.argmax(counts)])  # vs. the usual alignment
    if off.size:
        i = off[0]
        raise DumpError(
            f"{_where(kl, i)}: bar opening {_utc(kl.time[i])} is off the {duration(interval)} grid of "
            f"the other bars, expected one bar interval (are files of different intervals mixed?)"
        )
    gaps = np.flatnonzero(diffs > interval)
    for g in gaps[:MAX_GAP_LINES]:
        start, end = int(kl.time[g]) + interval, int(kl.time[g + 1])
        warns.append(
            f"klines have a gap from {_utc(start)} to {_utc(end)} ({duration(end - start)}, "
            f"{(end - start) // interval} bars missing, e.g. exchange maintenance); bridged"
        )
    if gaps.size > MAX_GAP_LINES:
        missing = int((diffs[gaps[MAX_GAP_LINES:]] - interval).sum())
        warns.append(
            f"and {gaps.size - MAX_GAP_LINES} more kline gaps ({duration(missing)} in all); bridged"
        )

    mparts = [_read_metrics_file(p) for p in metrics]
    # One market per run: mixing symbols would produce a plausible-looking but wrong map.
    named = [(p[0], p[4], "metrics") for p in mparts if p[4]]
    named += [(p[0], s, "klines") for p in kparts if (s := _symbol_from_name(p[0]))]
    for name, s, what in named[1:]:
        if s != named[0][1]:
            raise DumpError(
                f"{name}: {what} for {s}, but {named[0][0]} is for {named[0][1]}; expected one symbol"
            )
    symbol = named[0][1] if named else "UNKNOWN"
    mt, n_differ = _dedupe(_concat([p[:4] for p in mparts]))
    if n_differ:
        warns.append(
            f"{n_differ} metrics rows appear more than once with different values; kept the later file's"
        )

    # As-of join: a snapshot stamped T is the open interest at instant T, so the bar opening at t
    # (closing at t + interval) takes the latest snapshot stamped ≤ t + interval, if it is fresh.
    close = kl.time + interval
    j = np.searchsorted(mt.time, close, side="right") - 1
    inside = (j >= 0) & (close <= mt.time[-1])
    n_before = int(np.count_nonzero(j < 0))
    n_after = int(np.count_nonzero(close > mt.time[-1]))
    if not inside.any():
        raise DumpError(
            f"klines ({_utc(kl.time[0])} to {_utc(close[-1])}) and metrics ({_utc(mt.time[0])} to "
            f"{_utc(mt.time[-1])}) do not overlap in time, expected files covering the same days"
        )
    if n_before or n_after:
        warns.append(
            f"trimmed {n_before} bars before and {n_after} bars after the open-interest history "
            f"({_utc(mt.time[0])} to {_utc(mt.time[-1])})"
        )
    kt, kv, j, close = kl.time[inside], kl.values[inside], j[inside], close[inside]
    oi = mt.values[j, 0].copy()
    stale = close - mt.time[j] > MAX_OI_AGE_MS
    oi[stale] = np.nan
    if stale.any():
        warns.append(
            f"open interest unknown for {int(stale.sum())} bars (no metrics row within "
            f"{duration(MAX_OI_AGE_MS)} of their close)"
        )

    # Sanity check that the files are about the same market: metrics value/quantity is the
    # mark price at the snapshot, which should be near the bars' close.
    fresh = ~stale & (oi > 0)
    if fresh.any():
        implied = mt.values[j[fresh], 1] / oi[fresh]
        ratio = float(np.median(implied / kv[fresh, 3]))
        if not 0.8 < ratio < 1.25:
            warns.append(
                f"metrics imply a price {ratio:.2f}× the klines' close; are they for the same symbol?"
            )

    bars = {"time": kt.astype(np.int64)}
    for k, key in enumerate(BAR_KEYS[1:-1]):
        bars[key] = np.ascontiguousarray(kv[:, k], dtype=np.float64)
    bars["open_interest"] = oi
    return Dumps(bars=bars, symbol=symbol, interval_ms=interval, warnings=warns)
