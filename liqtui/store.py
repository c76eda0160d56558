"""The local store: what live capture saw, which no venue can send again.

One SQLite file in WAL mode (``$XDG_DATA_HOME/liqtui/liqtui.db``) per user, per (venue, symbol):

* ``steps``: closed model steps (the ``Backfill`` keys), upserted by interval and open time, so
  a later, better delivery of a step replaces the earlier one;
* ``open_interest``: the polled points (base units);
* ``marks``: the mark price as 1-minute bars (open, high, low, close, index close and the time
  of the newest mark), updated in place while the minute forms. The venues push a mark every
  second; the model needs only each step's mark range and replay only a price path, so a minute
  bar keeps both at 1,440 rows per symbol a day instead of 86,400;
* ``liquidations``: realized forced liquidations, deduplicated on the whole order (symbol,
  time, side, price, quantity: the venues give no ids), as the feeds do.

Writes never run on the caller's thread: ``add_*`` put the rows on a queue and one writer
thread commits them in batches (one transaction a batch) at least every ``flush_s`` (0.25 s),
so a process killed with SIGKILL loses at most what arrived in its last half second.
``synchronous=NORMAL`` keeps a committed batch through a process crash (not a power cut).

The file is checked before anything is written: a file that is not SQLite, an SQLite file of
another application (``application_id``), a store of a newer schema (``user_version``) or a
damaged one raises ``StoreError`` naming the path, and is left byte for byte as it was.
Older schemas are migrated in one transaction.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .feeds.events import Liquidation, MarkPrice, OpenInterest
from .feeds.series import STEP_KEYS

APPLICATION_ID = 0x6C717475  # "lqtu"
SCHEMA_VERSION = 2
from .units import DAY as DAY_MS, MINUTE as MINUTE_MS, STEP_MS  # noqa: E402
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BACKLOG = 2_000_000  # rows kept in memory while writes fail (then the oldest are dropped)
_VALUE_KEYS = STEP_KEYS[1:]

# Migration n brings a store from schema n-1 to n; a new store runs them all.
MIGRATIONS = {
    1: """
        CREATE TABLE series (
            id INTEGER PRIMARY KEY, venue TEXT NOT NULL, symbol TEXT NOT NULL,
            tick_size REAL, UNIQUE (venue, symbol));
        CREATE TABLE steps (
            series INTEGER NOT NULL REFERENCES series(id), interval_ms INTEGER NOT NULL,
            time INTEGER NOT NULL, open REAL, high REAL, low REAL, close REAL, volume REAL,
            quote_volume REAL, taker_buy_quote_volume REAL, open_interest REAL,
            mark_high REAL, mark_low REAL,
            PRIMARY KEY (series, interval_ms, time)) WITHOUT ROWID;
        CREATE TABLE open_interest (
            series INTEGER NOT NULL REFERENCES series(id), time INTEGER NOT NULL, base REAL,
            PRIMARY KEY (series, time)) WITHOUT ROWID;
        CREATE TABLE liquidations (
            series INTEGER NOT NULL REFERENCES series(id), time INTEGER NOT NULL,
            side TEXT NOT NULL, price REAL NOT NULL, qty REAL NOT NULL, notional REAL,
            PRIMARY KEY (series, time, side, price, qty)) WITHOUT ROWID;
    """,
    2: """
        CREATE TABLE marks (
            series INTEGER NOT NULL REFERENCES series(id), time INTEGER NOT NULL,
            open REAL, high REAL, low REAL, close REAL, index_close REAL,
            last_time INTEGER NOT NULL,
            PRIMARY KEY (series, time)) WITHOUT ROWID;
    """,
}
assert max(MIGRATIONS) == SCHEMA_VERSION
_TABLES = ("steps", "open_interest", "marks", "liquidations")


class StoreError(Exception):
    """The store cannot be used; ``str(e)`` names the path and what to do."""


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def check(path: Path, *, create: bool) -> int:
    """Refuse what is not a liqtui store of a schema this version reads, touching nothing.
    Returns the file's schema version (0: absent or empty, free to initialise)."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        if not create:
            return 0
        head = b""
    except OSError as e:
        raise StoreError(f"store {path}: cannot read ({e.strerror or e})") from None
    if not head:
        return 0
    if not head.startswith(_SQLITE_MAGIC) or len(head) < 100:
        raise StoreError(f"store {path}: not an SQLite database (corrupt, or some other file); "
                         "left untouched. Move it away or choose another --data-dir.")
    # through SQLite, not the header bytes: a store in use keeps its newest header in the WAL
    app, version, tables = _identity(path)
    if app != APPLICATION_ID:
        if app == 0 and version == 0 and tables == 0:
            return 0  # an empty SQLite file (no schema at all): nothing to lose
        raise StoreError(f"store {path}: an SQLite database of another application "
                         f"(application_id {app:#x}, liqtui's is {APPLICATION_ID:#x}); left "
                         "untouched. Choose another --data-dir.")
    if version > SCHEMA_VERSION:
        raise StoreError(f"store {path}: written by a newer liqtui (schema {version}; this "
                         f"version reads up to {SCHEMA_VERSION}); left untouched. Upgrade liqtui "
                         "or choose another --data-dir.")
    if version < 1:
        raise StoreError(f"store {path}: liqtui's, but of an unknown schema ({version}); left "
                         "untouched. Move it away or choose another --data-dir.")
    return version


def _identity(path: Path) -> tuple[int, int, int]:
    """(application_id, user_version, number of schema objects), read-only."""
    try:
        conn = _connect(path, "ro")
        try:
            return (conn.execute("PRAGMA application_id").fetchone()[0],
                    conn.execute("PRAGMA user_version").fetchone()[0],
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise _damaged(path, e) from None


def _damaged(path, e) -> StoreError:
    return StoreError(f"store {path}: damaged ({e}); left as it is. Move it away (or restore a "
                      "backup) and liqtui starts a new store.")


def _migrate(conn: sqlite3.Connection, path: Path, upto: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``upto`` in one transaction; returns the version it started from."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = conn.execute("PRAGMA user_version").fetchone()[0]
        if have > SCHEMA_VERSION:  # another process upgraded it meanwhile
            raise StoreError(f"store {path}: written by a newer liqtui (schema {have})")
        for v in range(have + 1, upto + 1):
            for stmt in filter(str.strip, MIGRATIONS[v].split(";")):
                conn.execute(stmt)
        if have < upto:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {upto}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return have


class Store:
    """Open (creating or migrating) the store at ``path``; ``readonly`` neither creates nor
    writes (``store info``, ``levels --source store``). Raises ``StoreError``."""

    def __init__(self, path, *, readonly: bool = False, retention_days: float | None = None,
                 flush_s: float = 0.25):
        self.path = Path(path)
        self.readonly = readonly
        self.retention_days = retention_days
        self.flush_s = flush_s
        self.error: str = ""            # the writer's last failure ("" when fine)
        self.written = 0                # rows committed by the writer
        self.dropped = 0                # rows given up on (the backlog cap while failing)
        self.missing = False            # readonly, and there is no store yet
        self._lock = threading.Lock()   # the read connection, from any thread
        self._ids: dict[tuple[str, str], int] = {}
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._tables = set(_TABLES)
        if readonly:  # an older schema is read as it is (tables it lacks read as empty)
            if not check(self.path, create=False):
                self.missing = True
                return
            try:
                self._conn = _connect(self.path, "ro")
                self._tables = {r[0] for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                self._conn.execute("SELECT count(*) FROM series").fetchone()
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from None
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store {self.path}: cannot create its directory "
                             f"({e.strerror or e})") from None
        check(self.path, create=True)
        try:
            self._conn = _connect(self.path, "rwc")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self.migrated_from = _migrate(self._conn, self.path)
            self._conn.execute("SELECT count(*) FROM series").fetchone()
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None
        except sqlite3.Error as e:
            raise StoreError(f"store {self.path}: {e}") from None
        self._writer = threading.Thread(target=self._write_loop, name="liqtui-store",
                                        daemon=True)
        self._writer.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ writes (any thread)

    def add_steps(self, venue: str, symbol: str, steps: Mapping[str, np.ndarray],
                  interval_ms: int = STEP_MS) -> int:
        """Queue closed steps (missing keys are stored as unknown); returns how many."""
        n = len(steps["time"])
        if n:
            cols = [np.asarray(steps["time"], dtype=np.int64).tolist()]
            cols += [np.asarray(steps[k], dtype=np.float64).tolist() if k in steps else [None] * n
                     for k in _VALUE_KEYS]
            self._q.put(("steps", venue, symbol, interval_ms, list(zip(*cols))))
        return n

    def add_event(self, ev) -> bool:
        """Queue an open-interest point, a mark price or a liquidation (others: False)."""
        cls = ev.__class__
        if cls is MarkPrice:
            self._q.put(("mark", ev.venue, ev.symbol, ev.time, ev.price, ev.index_price))
        elif cls is Liquidation:
            self._q.put(("liq", ev.venue, ev.symbol, ev.time, ev.side, ev.price, ev.qty,
                         ev.notional))
        elif cls is OpenInterest:
            self._q.put(("oi", ev.venue, ev.symbol, ev.time, ev.base))
        else:
            return False
        return True

    def set_tick_size(self, venue: str, symbol: str, tick_size: float | None) -> None:
        self._q.put(("tick", venue, symbol, tick_size))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed (False on timeout or failure)."""
        if self._writer is None or not self._writer.is_alive():
            return self._writer is None
        done = threading.Event()
        self._q.put(("flush", done))
        return done.wait(timeout) and not self.error

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued and close (idempotent)."""
        w, self._writer = self._writer, None
        if w is not None and w.is_alive():
            self._q.put(("stop", None))
            w.join(timeout)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        conn = _connect(self.path, "rw")
        conn.execute("PRAGMA synchronous = NORMAL")
        ids: dict[tuple[str, str], int] = {}
        self._prune(conn)
        pruned = time.monotonic()
        backlog: list = []
        while True:
            batch = backlog or [self._q.get()]
            deadline = time.monotonic() + self.flush_s
            stop, waiters = False, []
            while True:  # gather for at most flush_s, so a commit is never later than that
                left = deadline - time.monotonic()
                try:
                    item = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                if item[0] in ("flush", "stop"):
                    break
            rows = [x for x in batch if x[0] not in ("flush", "stop")]
            waiters = [x[1] for x in batch if x[0] == "flush"]
            stop = any(x[0] == "stop" for x in batch)
            try:
                self._commit(conn, ids, rows)
                self.written += sum(len(r[4]) if r[0] == "steps" else 1 for r in rows)
                self.error, backlog = "", []
            except sqlite3.Error as e:  # disk full, locked for too long: keep and retry
                self.error = f"store {self.path}: cannot write ({e}); retrying"
                backlog = rows[-_BACKLOG:]
                self.dropped += len(rows) - len(backlog)
                if not stop:
                    time.sleep(1.0)
            except Exception as e:  # a bad row (a bug of ours): drop the batch, say so
                self.error = f"store {self.path}: batch dropped ({type(e).__name__}: {e})"
                self.dropped += len(rows)
                backlog = []
            for w in waiters:
                w.set()
            if stop:
                break
            if self.retention_days and time.monotonic() - pruned > 3600:
                self._prune(conn)
                pruned = time.monotonic()
        conn.close()

    def _series_id(self, conn, ids, venue: str, symbol: str) -> int:
        key = (venue, symbol)
        sid = ids.get(key)
        if sid is None:
            conn.execute("INSERT OR IGNORE INTO series (venue, symbol) VALUES (?, ?)", key)
            sid = ids[key] = conn.execute(
                "SELECT id FROM series WHERE venue = ? AND symbol = ?", key).fetchone()[0]
        return sid

    def _commit(self, conn, ids, rows) -> None:
        if not rows:
            return
        sid = lambda v, s: self._series_id(conn, ids, v, s)  # noqa: E731
        steps, ois, liqs, marks, ticks = [], [], [], {}, []
        for r in rows:
            kind = r[0]
            if kind == "mark":
                _, v, s, t, p, ix = r
                key = (sid(v, s), t - t % MINUTE_MS)
                b = marks.get(key)
                if b is None:
                    marks[key] = [p, p, p, p, ix, t]
                elif t >= b[5]:
                    b[1], b[2], b[3], b[4], b[5] = max(b[1], p), min(b[2], p), p, ix, t
                else:  # late: widen the range only
                    b[1], b[2] = max(b[1], p), min(b[2], p)
            elif kind == "liq":
                ix = sid(r[1], r[2])
                liqs.append((ix, *r[3:]))
            elif kind == "oi":
                ois.append((sid(r[1], r[2]), r[3], r[4]))
            elif kind == "steps":
                ix, iv = sid(r[1], r[2]), r[3]
                steps.extend((ix, iv, *row) for row in r[4])
            elif kind == "tick":
                ticks.append((r[3], sid(r[1], r[2])))
        conn.execute("BEGIN")
        try:
            if steps:
                conn.executemany("INSERT OR REPLACE INTO steps VALUES "
                                 "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps)
            if ois:
                conn.executemany("INSERT OR REPLACE INTO open_interest VALUES (?, ?, ?)", ois)
            if liqs:
                conn.executemany("INSERT OR IGNORE INTO liquidations VALUES (?, ?, ?, ?, ?, ?)",
                                 liqs)
            if marks:
                conn.executemany(
                    "INSERT INTO marks VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (series, time) DO UPDATE SET "
                    "high = max(high, excluded.high), low = min(low, excluded.low), "
                    "close = iif(excluded.last_time >= last_time, excluded.close, close), "
                    "index_close = iif(excluded.last_time >= last_time, excluded.index_close, "
                    "index_close), last_time = max(last_time, excluded.last_time)",
                    [(k[0], k[1], *b) for k, b in marks.items()])
            if ticks:
                conn.executemany("UPDATE series SET tick_size = ? WHERE id = ?", ticks)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            ids.clear()  # series rows of the failed transaction are gone
            raise

    def _prune(self, conn) -> None:
        if not self.retention_days:
            return
        cutoff = int(time.time() * 1000 - self.retention_days * DAY_MS)
        try:
            conn.execute("BEGIN")
            for t in _TABLES:
                conn.execute(f"DELETE FROM {t} WHERE time < ?", (cutoff,))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            conn.execute("ROLLBACK")
            self.error = f"store {self.path}: pruning failed ({e})"

    # ------------------------------------------------------------------ reads

    def _query(self, sql: str, params=()) -> list[tuple]:
        if self._conn is None:
            return []
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from None

    def _sid(self, venue: str, symbol: str) -> int | None:
        rows = self._query("SELECT id FROM series WHERE venue = ? AND symbol = ?",
                           (venue, symbol.upper()))
        return rows[0][0] if rows else None

    def tick_size(self, venue: str, symbol: str) -> float | None:
        rows = self._query("SELECT tick_size FROM series WHERE venue = ? AND symbol = ?",
                           (venue, symbol.upper()))
        return rows[0][0] if rows else None

    def steps(self, venue: str, symbol: str, start: int | None = None, end: int | None = None,
              interval_ms: int = STEP_MS) -> dict[str, np.ndarray]:
        """Closed steps opening in [start, end) in time order: the arrays ``build_heatmap`` and
        ``SymbolSeries.extend`` take (unknown values NaN)."""
        sid = self._sid(venue, symbol)
        rows = [] if sid is None else self._query(
            f"SELECT time, {', '.join(_VALUE_KEYS)} FROM steps WHERE series = ? AND "
            "interval_ms = ? AND time >= ? AND time < ? ORDER BY time",
            (sid, interval_ms, -(2**62) if start is None else start,
             2**62 if end is None else end))
        a = np.array(rows, dtype=np.float64).reshape(-1, len(STEP_KEYS))
        out = {"time": a[:, 0].astype(np.int64)}
        out.update((k, np.ascontiguousarray(a[:, i])) for i, k in enumerate(_VALUE_KEYS, 1))
        return out

    def last_step(self, venue: str, symbol: str, interval_ms: int = STEP_MS) -> int | None:
        """Open time of the newest stored step, or None."""
        sid = self._sid(venue, symbol)
        rows = [] if sid is None else self._query(
            "SELECT max(time) FROM steps WHERE series = ? AND interval_ms = ?", (sid, interval_ms))
        return rows[0][0] if rows else None

    def _columns(self, table: str, cols: tuple[str, ...], venue, symbol, start, end) -> dict:
        sid = self._sid(venue, symbol)
        rows = [] if sid is None or table not in self._tables else self._query(
            f"SELECT {', '.join(cols)} FROM {table} WHERE series = ? AND time >= ? AND time < ? "
            "ORDER BY time", (sid, -(2**62) if start is None else start,
                              2**62 if end is None else end))
        out = {}
        for i, c in enumerate(cols):
            vals = [r[i] for r in rows]
            out[c] = (np.array(vals, dtype=object) if c == "side" else
                      np.array(vals, dtype=np.int64 if c.endswith("time") else np.float64))
        return out

    def open_interest(self, venue, symbol, start=None, end=None) -> dict[str, np.ndarray]:
        """Polled open interest: ``time``, ``base``."""
        return self._columns("open_interest", ("time", "base"), venue, symbol, start, end)

    def marks(self, venue, symbol, start=None, end=None) -> dict[str, np.ndarray]:
        """1-minute mark bars: ``time`` (minute open), ``open``/``high``/``low``/``close``,
        ``index_close``, ``last_time`` (the newest mark in the minute)."""
        return self._columns("marks", ("time", "open", "high", "low", "close", "index_close",
                                       "last_time"), venue, symbol, start, end)

    def liquidations(self, venue, symbol, start=None, end=None) -> dict[str, np.ndarray]:
        """Realized liquidations: ``time``, ``side`` ("long"/"short"), ``price``, ``qty``,
        ``notional``."""
        return self._columns("liquidations", ("time", "side", "price", "qty", "notional"),
                             venue, symbol, start, end)

    def info(self) -> dict:
        """``{"path", "bytes", "series": [{"venue", "symbol", "bars", "open_interest",
        "liquidations", "first", "last"}…]}``; times in ms (the span of everything stored)."""
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"))
                   if p.exists())
        series = []
        if self._conn is not None:
            counts = {}
            for t in _TABLES:
                if t not in self._tables:
                    continue
                for sid, n, lo, hi in self._query(
                        f"SELECT series, count(*), min(time), max(time) FROM {t} GROUP BY series"):
                    counts.setdefault(sid, {})[t] = (n, lo, hi)
            for sid, venue, symbol in self._query(
                    "SELECT id, venue, symbol FROM series ORDER BY venue, symbol"):
                c = counts.get(sid, {})
                spans = [v[1:] for v in c.values()]
                series.append({
                    "venue": venue, "symbol": symbol,
                    "bars": c.get("steps", (0,))[0],
                    "open_interest": c.get("open_interest", (0,))[0],
                    "liquidations": c.get("liquidations", (0,))[0],
                    "first": min((s[0] for s in spans), default=None),
                    "last": max((s[1] for s in spans), default=None),
                })
        return {"path": str(self.path), "bytes": size, "series": series}
