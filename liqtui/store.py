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
Only damage is called damage: a store this user cannot write, or a full disk, is said as such,
and read-only opens read a write-protected store (immutable when its directory does not allow
the -shm file a WAL reader needs). Rows are checked on the way in and skipped on the way out
(``rejected``, ``skipped``): see MIN_TIME below for what is stored.

A store records what it holds (``meta`` row ``kind``): ``real`` captures or ``simulated`` data
(``record --demo``), set when it is first opened for writing; a store made before the row
existed counts as real if it holds anything. Opening it for writing the other kind raises
``StoreKindError`` naming the path and what it holds, and leaves the file byte for byte as it
was: simulated data never enters a store of real captures (nor the reverse). Read-only opens
read either kind.
"""

from __future__ import annotations

import os
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
SCHEMA_VERSION = 3
KINDS = ("real", "simulated")
from .units import DAY as DAY_MS, MINUTE as MINUTE_MS, STEP_MS  # noqa: E402
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BACKLOG = 2_000_000  # rows kept in memory while writes fail (then the oldest are dropped)
_VALUE_KEYS = STEP_KEYS[1:]

# What is stored (checked on the way in, and again on the way out for rows an older version
# wrote): a time in [2009-01-01, now + 1 day]; prices (open, high, low, close, mark,
# liquidation) finite and in (0, MAX_PRICE], an index price in [0, MAX_PRICE]; volumes, open
# interest, quantities and notionals finite and in [0, MAX_AMOUNT]. NaN means "unknown" and is
# kept except in open/high/low/close and a liquidation's price and quantity. A bar whose
# high/low do not bracket its open/close is kept: venues and dumps deliver such bars and the
# model repairs them.
MIN_TIME = 1_230_768_000_000  # 2009-01-01
MAX_PRICE = 1e12
MAX_AMOUNT = 1e18
_PRICE_KEYS = ("open", "high", "low", "close")
_MARK_KEYS = ("mark_high", "mark_low")  # prices, but may be unknown; the rest are amounts

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
    3: """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
}
assert max(MIGRATIONS) == SCHEMA_VERSION
_TABLES = ("steps", "open_interest", "marks", "liquidations")


class StoreError(Exception):
    """The store cannot be used; ``str(e)`` names the path and what to do."""


class StoreKindError(StoreError):
    """The store holds the other kind of data (real captures vs simulated) than a writer's."""


_WHAT = {"real": "real captures", "simulated": "simulated data (--demo)"}


def _kind_error(path: Path, held: str, kind: str) -> StoreKindError:
    return StoreKindError(f"store {path}: holds {_WHAT[held]}, so {_WHAT[kind]} cannot be "
                          "written into it; left untouched. Choose another --data-dir.")


def _held(conn: sqlite3.Connection, tables: set, unmarked: str = "real") -> str | None:
    """What the store holds: its ``kind`` row; without one, ``unmarked`` (real unless the
    caller knows better) if it holds anything (a store made before the row existed), else None
    (free to claim)."""
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
        if row is not None:
            return row[0]
    filled = any(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]
                 for t in _TABLES if t in tables)
    return unmarked if filled else None


def _tables(conn: sqlite3.Connection) -> set:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _max_time() -> int:
    return int(time.time() * 1000) + DAY_MS


def _valid_steps(time_: np.ndarray, cols: dict) -> np.ndarray:
    """The mask of rows fit to store (or to read back): see MIN_TIME above."""
    with np.errstate(invalid="ignore"):
        ok = (time_ >= MIN_TIME) & (time_ <= _max_time())
        for k, v in cols.items():
            if k in _PRICE_KEYS:
                ok &= (v > 0) & (v <= MAX_PRICE)  # NaN fails both
            elif k in _MARK_KEYS:
                ok &= np.isnan(v) | ((v > 0) & (v <= MAX_PRICE))
            else:
                ok &= np.isnan(v) | ((v >= 0) & (v <= MAX_AMOUNT))
    return ok


def _fine(x, lo_open: bool, top: float, unknown_ok: bool = False) -> bool:
    """A finite number in (0, top] (``lo_open``) or [0, top]; NaN/None if ``unknown_ok``."""
    if x is None or x != x:
        return unknown_ok
    try:
        return (0 < x if lo_open else 0 <= x) and x <= top
    except TypeError:
        return False


def _valid_event(ev) -> bool:
    try:
        if not MIN_TIME <= ev.time <= _max_time():  # NaN fails too
            return False
    except TypeError:
        return False
    cls = ev.__class__
    if cls is MarkPrice:
        return _fine(ev.price, True, MAX_PRICE) and _fine(ev.index_price, False, MAX_PRICE, True)
    if cls is Liquidation:
        return (_fine(ev.price, True, MAX_PRICE) and _fine(ev.qty, True, MAX_AMOUNT)
                and _fine(ev.notional, False, MAX_AMOUNT, True))
    return _fine(ev.base, False, MAX_AMOUNT)  # OpenInterest


def _create_private(path: Path) -> None:
    """Create the store file readable by this user only (0600), if it is not there: SQLite
    gives its -wal and -shm the main file's permissions, so they are private too (with the
    umask's 0644 a store of what one trader watched was readable by every user)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        pass


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    """``mode``: ro, rw, rwc, or immutable (read-only without locks, for a store in a
    directory this user cannot write: SQLite then cannot make the -shm a WAL reader needs)."""
    q = "immutable=1" if mode == "immutable" else f"mode={mode}"
    conn = sqlite3.connect(f"file:{path}?{q}", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _connect_ro(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection, and whether it is immutable: a store whose directory (or -shm)
    this user cannot write is read as immutable, since a WAL reader must create or write the
    -shm file. Such a store has no writer (none could open it either)."""
    conn = _connect(path, "ro")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, False
    except sqlite3.OperationalError as e:
        if not _name(e).startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
            conn.close()
            raise
        conn.close()
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:  # immutable would not see what the -wal holds
        raise StoreError(f"store {path}: cannot be read: its newest writes are in {wal}, which "
                         f"SQLite reads only with write access to {path.parent} (to make the "
                         "-shm file); the store is not damaged and was left as it is. Let this "
                         "user write the directory once, or copy the store with its -wal "
                         "elsewhere.")
    conn = _connect(path, "immutable")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn, True


def _name(e: sqlite3.Error) -> str:
    return getattr(e, "sqlite_errorname", "") or ""


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
        conn, _ = _connect_ro(path)
        try:
            return (conn.execute("PRAGMA application_id").fetchone()[0],
                    conn.execute("PRAGMA user_version").fetchone()[0],
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise _damaged(path, e) from None


def _damaged(path, e) -> StoreError:
    """What an SQLite failure means for the user: only corruption is called damage (and only
    then is moving the store away the advice); permissions, a full disk, I/O errors and a
    store kept busy by another process are said as such."""
    name = _name(e) if isinstance(e, sqlite3.Error) else ""
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return _not_writable(path, e)
    if name.startswith("SQLITE_FULL"):
        return StoreError(f"store {path}: no space left on the device ({e}); the store is not "
                          "damaged and was left as it is. Free some space and try again.")
    if name.startswith("SQLITE_IOERR"):
        return StoreError(f"store {path}: input/output error ({e}); left as it is. Check the "
                          "disk (or free some space) and try again.")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(f"store {path}: locked by another process for too long ({e}); try "
                          "again.")
    return StoreError(f"store {path}: damaged ({e}); left as it is. Move it away (or restore a "
                      "backup) and liqtui starts a new store.")


def _not_writable(path, why) -> StoreError:
    if not Path(path).exists():
        return StoreError(f"store {path}: cannot be created: permission denied ({why}). Let "
                          f"this user write {Path(path).parent} or choose another --data-dir.")
    return StoreError(f"store {path}: cannot be written: permission denied ({why}); the store "
                      "is not damaged and was left as it is. Fix the permissions of the file and "
                      "its directory or choose another --data-dir (liqtui store info and levels "
                      "--source store only read it, and can).")


def _writable(path: Path) -> bool:
    """Can this user write the store (its directory, the file and its -wal/-shm if present)?"""
    import os

    return all(os.access(p, os.W_OK) for p in (path.parent, path, Path(f"{path}-wal"),
                                                 Path(f"{path}-shm"))
               if p == path.parent or p.exists())


def _migrate(conn: sqlite3.Connection, path: Path, upto: int = SCHEMA_VERSION,
             kind: str | None = None, unmarked: str = "real") -> int:
    """Bring the schema to ``upto`` in one transaction, and claim the store for ``kind`` (or
    raise ``StoreKindError`` if it holds the other); returns the version it started from."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = conn.execute("PRAGMA user_version").fetchone()[0]
        if have > SCHEMA_VERSION:  # another process upgraded it meanwhile
            raise StoreError(f"store {path}: written by a newer liqtui (schema {have})")
        held = _held(conn, _tables(conn), unmarked) if kind is not None else None
        if held is not None and held != kind:
            raise _kind_error(path, held, kind)
        for v in range(have + 1, upto + 1):
            for stmt in filter(str.strip, MIGRATIONS[v].split(";")):
                conn.execute(stmt)
        if have < upto:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {upto}")
        if kind is not None:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('kind', ?)",
                         (held or kind,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return have


class Store:
    """Open (creating or migrating) the store at ``path`` to write ``kind`` (real captures or
    simulated data); ``readonly`` neither creates nor writes (``store info``, ``levels --source
    store``) and reads either kind. Raises ``StoreError`` (``StoreKindError``: the other kind).
    ``unmarked``: what a store from before the kind row holds if it holds anything (real, but
    the demo's own store, ``demo/`` in the data directory, was only ever written simulated)."""

    def __init__(self, path, *, readonly: bool = False, retention_days: float | None = None,
                 flush_s: float = 0.25, kind: str = "real", unmarked: str = "real"):
        if kind not in KINDS or unmarked not in KINDS:
            raise ValueError(f"store kind {kind!r}/{unmarked!r}: expected {' or '.join(KINDS)}")
        self.path = Path(path)
        self.kind: str | None = None if readonly else kind  # readonly: what it holds (below)
        self.readonly = readonly
        self.retention_days = retention_days
        self.flush_s = flush_s
        self.error: str = ""            # the writer's last failure ("" when fine)
        self.written = 0                # rows committed by the writer
        self.dropped = 0                # rows given up on (the backlog cap while failing)
        self.missing = False            # readonly, and there is no store yet
        self.immutable = False          # readonly, read without locks (a write-protected store)
        self.rejected = 0               # rows refused on the way in (not finite, implausible)
        self.skipped = 0                # such rows found in the store (an older version's)
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
                self._conn, self.immutable = _connect_ro(self.path)
                self._tables = _tables(self._conn)
                self._conn.execute("SELECT count(*) FROM series").fetchone()
                self.kind = _held(self._conn, self._tables)
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from None
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store {self.path}: cannot create its directory "
                             f"({e.strerror or e})") from None
        if not _writable(self.path):
            raise _not_writable(self.path, "not writable by this user")
        if check(self.path, create=True):  # read-only first: a refusal writes nothing at all
            try:
                conn, _ = _connect_ro(self.path)
                try:
                    held = _held(conn, _tables(conn), unmarked)
                finally:
                    conn.close()
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from None
            if held is not None and held != kind:
                raise _kind_error(self.path, held, kind)
        try:
            _create_private(self.path)
            self._conn = _connect(self.path, "rwc")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self.migrated_from = _migrate(self._conn, self.path, kind=kind, unmarked=unmarked)
            self._conn.execute("SELECT count(*) FROM series").fetchone()
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None
        except sqlite3.Error as e:
            raise StoreError(f"store {self.path}: {e}") from None
        except OSError as e:  # sqlite3 raises its own errors; this is for the Python side
            raise StoreError(f"store {self.path}: cannot open ({e.strerror or e})") from None
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
        """Queue closed steps (missing keys are stored as unknown); returns how many. Rows that
        are not fit to store (see MIN_TIME) are left out and counted in ``rejected``."""
        n = len(steps["time"])
        if n:
            t = np.asarray(steps["time"], dtype=np.int64)
            vals = {k: np.asarray(steps[k], dtype=np.float64) for k in _VALUE_KEYS if k in steps}
            ok = _valid_steps(t, vals)
            if not ok.all():
                self.rejected += int(n - ok.sum())
                n = int(ok.sum())
                t, vals = t[ok], {k: v[ok] for k, v in vals.items()}
            if n:
                cols = [t.tolist()]
                cols += [vals[k].tolist() if k in vals else [None] * n for k in _VALUE_KEYS]
                self._q.put(("steps", venue, symbol, interval_ms, list(zip(*cols))))
        return n

    def add_event(self, ev) -> bool:
        """Queue an open-interest point, a mark price or a liquidation (others, and those not fit
        to store, counted in ``rejected``: False)."""
        cls = ev.__class__
        if cls in (MarkPrice, Liquidation, OpenInterest) and not _valid_event(ev):
            self.rejected += 1
            return False
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
        ok = _valid_steps(a[:, 0], {k: a[:, i] for i, k in enumerate(_VALUE_KEYS, 1)})
        if not ok.all():  # written by an older version, which stored them unchecked
            self.skipped += int(len(ok) - ok.sum())
            a = a[ok]
        out = {"time": a[:, 0].astype(np.int64)}
        out.update((k, np.ascontiguousarray(a[:, i])) for i, k in enumerate(_VALUE_KEYS, 1))
        return out

    def last_step(self, venue: str, symbol: str, interval_ms: int = STEP_MS) -> int | None:
        """Open time of the newest stored step (of a plausible time), or None."""
        sid = self._sid(venue, symbol)
        rows = [] if sid is None else self._query(
            "SELECT max(time) FROM steps WHERE series = ? AND interval_ms = ? AND time >= ? AND "
            "time <= ?", (sid, interval_ms, MIN_TIME, _max_time()))
        return rows[0][0] if rows else None

    def _columns(self, table: str, cols: tuple[str, ...], venue, symbol, start, end) -> dict:
        sid = self._sid(venue, symbol)
        rows = [] if sid is None or table not in self._tables else self._query(
            f"SELECT {', '.join(cols)} FROM {table} WHERE series = ? AND time >= ? AND time < ? "
            "ORDER BY time", (sid, -(2**62) if start is None else start,
                              2**62 if end is None else end))
        top = _max_time()
        fit = [r for r in rows if MIN_TIME <= r[0] <= top and not any(
            isinstance(x, float) and not (x != x or 0 <= x <= MAX_AMOUNT) for x in r[1:])]
        if len(fit) < len(rows):  # written unchecked by an older version: NaN is unknown
            self.skipped += len(rows) - len(fit)
            rows = fit
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
        """``{"path", "bytes", "kind", "series": [{"venue", "symbol", "bars", "open_interest",
        "liquidations", "first", "last"}…]}``; times in ms (the span of everything stored);
        ``kind``: real, simulated, or None (nothing in it yet)."""
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
        return {"path": str(self.path), "bytes": size, "kind": self.kind, "series": series}
