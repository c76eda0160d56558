"""The local store: round trips, batching off the caller's thread, refusals that leave the
file untouched, migrations and retention."""

from __future__ import annotations

import hashlib
from pathlib import Path
import sqlite3
import time

import numpy as np
import pytest

from liqtui.config import default_data_dir, load_settings
from liqtui.feeds.events import Liquidation, MarkPrice, OpenInterest, Trade
from liqtui.feeds.series import STEP_KEYS
from liqtui.model import build_heatmap
from liqtui.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Store,
    StoreError,
    StoreKindError,
    _connect,
    _migrate,
)
from strategies import random_bars

NOW = int(time.time() * 1000) // 60_000 * 60_000


def _bars(seed=1, n=400):
    bars = random_bars(seed, n_steps=n, long_gaps=0, short_gaps=1, bad_rows=0)
    shift = NOW - 86_400_000 - int(bars["time"][0])  # recent: inside any retention
    bars["time"] = bars["time"] + shift // 300_000 * 300_000
    return bars


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_steps_round_trip_and_build_the_same_heatmap(tmp_path):
    bars = _bars()
    with Store(tmp_path / "s.db") as st:
        assert st.add_steps("binance", "BTCUSDT", bars) == len(bars["time"])
        assert st.flush()
        got = st.steps("binance", "BTCUSDT")
        assert st.last_step("binance", "BTCUSDT") == int(bars["time"][-1])
    assert list(got) == list(STEP_KEYS)
    assert got["time"].dtype == np.int64
    for k in STEP_KEYS:
        np.testing.assert_array_equal(got[k], bars[k])   # NaN (unknown OI, marks) included
    np.testing.assert_array_equal(build_heatmap(got).columns, build_heatmap(bars).columns)
    # a window, and another symbol or venue sees nothing
    with Store(tmp_path / "s.db", readonly=True) as st:
        t = bars["time"]
        part = st.steps("binance", "btcusdt", int(t[10]), int(t[20]))
        np.testing.assert_array_equal(part["time"], t[10:20])
        assert len(st.steps("bybit", "BTCUSDT")["time"]) == 0
        assert len(st.steps("binance", "ETHUSDT")["time"]) == 0


def test_a_newer_delivery_of_a_step_replaces_the_older(tmp_path):
    bars = _bars(n=50)
    with Store(tmp_path / "s.db") as st:
        st.add_steps("binance", "BTCUSDT", bars)
        fix = {k: v[-3:].copy() for k, v in bars.items()}
        fix["open_interest"] = np.array([1.0, 2.0, 3.0])
        st.add_steps("binance", "BTCUSDT", fix)
        st.flush()
        got = st.steps("binance", "BTCUSDT")
    assert len(got["time"]) == len(bars["time"])
    np.testing.assert_array_equal(got["open_interest"][-3:], [1.0, 2.0, 3.0])


def test_events_marks_as_minute_bars_and_liquidations_deduplicated(tmp_path):
    t0 = NOW - 3_600_000
    marks = [100.0, 103.0, 99.0, 101.0, 102.0]  # 5 s apart, one minute
    liq = Liquidation("binance", "BTCUSDT", t0 + 500, "long", 99.5, 2.0, 199.0)
    with Store(tmp_path / "s.db") as st:
        for i, p in enumerate(marks):
            assert st.add_event(MarkPrice("binance", "BTCUSDT", t0 + 5000 * i, p, p - 1))
        st.flush()  # the minute is stored while it forms, then extended
        st.add_event(MarkPrice("binance", "BTCUSDT", t0 + 30_000, 98.0, 97.0))
        st.add_event(MarkPrice("binance", "BTCUSDT", t0 + 60_000, 104.0, 103.0))  # next minute
        st.add_event(MarkPrice("binance", "BTCUSDT", t0 + 1000, 105.0, 0.0))  # late: range only
        assert st.add_event(liq) and st.add_event(liq)
        st.add_event(Liquidation("binance", "BTCUSDT", t0 + 500, "short", 99.5, 2.0, 199.0))
        st.add_event(OpenInterest("binance", "BTCUSDT", t0, 1234.5))
        st.add_event(OpenInterest("binance", "BTCUSDT", t0 + 5000, 1240.0))
        assert not st.add_event(Trade("binance", "BTCUSDT", t0, 1, 100.0, 1.0, True))
        st.flush()
        m = st.marks("binance", "BTCUSDT")
        lq = st.liquidations("binance", "BTCUSDT")
        oi = st.open_interest("binance", "BTCUSDT")
        info = st.info()
    np.testing.assert_array_equal(m["time"], [t0, t0 + 60_000])
    np.testing.assert_array_equal(m["open"], [100.0, 104.0])
    np.testing.assert_array_equal(m["high"], [105.0, 104.0])
    np.testing.assert_array_equal(m["low"], [98.0, 104.0])
    np.testing.assert_array_equal(m["close"], [98.0, 104.0])
    np.testing.assert_array_equal(m["index_close"], [97.0, 103.0])
    np.testing.assert_array_equal(m["last_time"], [t0 + 30_000, t0 + 60_000])
    assert list(lq["side"]) == ["long", "short"]   # the duplicate dropped, the other kept
    np.testing.assert_array_equal(oi["base"], [1234.5, 1240.0])
    (s,) = info["series"]
    assert s == {"venue": "binance", "symbol": "BTCUSDT", "bars": 0, "open_interest": 2,
                 "liquidations": 2, "first": t0, "last": t0 + 60_000}
    assert info["bytes"] > 0 and info["path"] == str(tmp_path / "s.db")


def test_writes_commit_on_their_own_within_the_flush_interval(tmp_path):
    path = tmp_path / "s.db"
    st = Store(path, flush_s=0.25)
    try:
        t0 = time.perf_counter()
        for i in range(20_000):
            st.add_event(OpenInterest("binance", "BTCUSDT", NOW + i, float(i)))
        queued = time.perf_counter() - t0
        other = sqlite3.connect(path)  # another reader, as a second process would be
        count = lambda: other.execute("SELECT count(*) FROM open_interest").fetchone()[0]  # noqa
        assert _wait(lambda: count() == 20_000), count()   # no flush() called
        other.close()
        assert queued < 5.0  # queuing does not wait for the disk (it is ~µs per event)
    finally:
        st.close()


def test_reopen_keeps_everything_and_info_counts_it(tmp_path):
    bars = _bars(n=30)
    path = tmp_path / "d" / "liqtui.db"
    with Store(path) as st:
        st.add_steps("binance", "ETHUSDT", bars)
        st.add_steps("bybit", "ETHUSDT", bars)
    with Store(path, readonly=True) as st:
        info = st.info()
    n = len(bars["time"])
    assert [(s["venue"], s["symbol"], s["bars"]) for s in info["series"]] == [
        ("binance", "ETHUSDT", n), ("bybit", "ETHUSDT", n)]
    assert info["series"][0]["first"] == int(bars["time"][0])
    assert info["series"][0]["last"] == int(bars["time"][-1])


def test_readonly_of_a_missing_store_creates_nothing(tmp_path):
    path = tmp_path / "nothing" / "liqtui.db"
    with Store(path, readonly=True) as st:
        assert st.missing
        assert st.info() == {"path": str(path), "bytes": 0, "kind": None, "series": []}
        assert len(st.steps("binance", "BTCUSDT")["time"]) == 0
    assert not path.parent.exists()


# ------------------------------------------------------------------ refusals


def _refused(path, *, readonly=False) -> str:
    before = _digest(path)
    with pytest.raises(StoreError) as e:
        Store(path, readonly=readonly)
    assert _digest(path) == before, "the file was modified"
    assert str(path) in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path, readonly):
    path = tmp_path / "liqtui.db"
    path.write_bytes(np.random.default_rng(1).bytes(10_000))
    assert "not an SQLite database" in _refused(path, readonly=readonly)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_foreign_sqlite_file_is_refused_and_left_alone(tmp_path, readonly):
    path = tmp_path / "liqtui.db"
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE notes (body TEXT)")
    c.execute("INSERT INTO notes VALUES ('mine')")
    c.commit()
    c.close()
    assert "another application" in _refused(path, readonly=readonly)
    c = sqlite3.connect(path)
    c.execute("PRAGMA application_id = 1234")  # an app that labels its files
    c.commit()
    c.close()
    assert "0x4d2" in _refused(path, readonly=readonly)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_newer_schema_is_refused(tmp_path, readonly):
    path = tmp_path / "liqtui.db"
    with Store(path) as st:
        st.add_steps("binance", "BTCUSDT", _bars(n=30))
    c = sqlite3.connect(path)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    msg = _refused(path, readonly=readonly)
    assert f"schema {SCHEMA_VERSION + 1}" in msg and "newer liqtui" in msg


def test_a_damaged_store_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "liqtui.db"
    with Store(path) as st:
        st.add_steps("binance", "BTCUSDT", _bars(n=2000))
    data = bytearray(path.read_bytes())
    assert len(data) > 8192
    data[4096:] = np.random.default_rng(2).bytes(len(data) - 4096)  # page 2 on: garbage
    path.write_bytes(bytes(data))
    msg = _refused(path)
    assert "damaged" in msg or "not an SQLite database" in msg


def test_an_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "liqtui.db"
    path.write_bytes(b"")
    with Store(path) as st:
        st.add_steps("binance", "BTCUSDT", _bars(n=30))
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    c.close()


# ------------------------------------------------------------------ migrations, retention


def test_a_schema_1_store_is_migrated_keeping_its_data(tmp_path):
    path = tmp_path / "liqtui.db"
    c = _connect(path, "rwc")
    assert _migrate(c, path, upto=1) == 0
    c.execute("INSERT INTO series (venue, symbol) VALUES ('binance', 'BTCUSDT')")
    c.execute("INSERT INTO liquidations VALUES (1, ?, 'long', 100.0, 1.0, 100.0)", (NOW,))
    c.close()
    with Store(path, readonly=True) as st:  # read as it is, untouched
        assert st.info()["series"][0]["liquidations"] == 1
        assert len(st.marks("binance", "BTCUSDT")["time"]) == 0
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 1
    c.close()
    with Store(path) as st:
        assert st.migrated_from == 1
        st.add_event(MarkPrice("binance", "BTCUSDT", NOW, 100.0))
        st.flush()
        assert len(st.marks("binance", "BTCUSDT")["time"]) == 1
        assert len(st.liquidations("binance", "BTCUSDT")["time"]) == 1
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    c.close()


def test_a_store_records_its_kind_and_refuses_the_other(tmp_path):
    path = tmp_path / "liqtui.db"
    with Store(path, kind="simulated") as st:
        st.add_steps("binance", "BTCUSDT", _bars(n=30))
    before = _digest(path)
    with pytest.raises(StoreKindError) as e:
        Store(path)  # a real writer
    msg = str(e.value)
    assert str(path) in msg and "holds simulated data" in msg and "left untouched" in msg
    assert _digest(path) == before
    with Store(path, readonly=True) as st:  # read-only: either kind
        assert st.kind == "simulated" and st.info()["kind"] == "simulated"
        assert st.info()["series"][0]["bars"] > 0
    with Store(path, kind="simulated") as st:
        assert st.kind == "simulated"


@pytest.mark.parametrize("filled, kind, unmarked, refused", [
    (True, "simulated", "real", True), (True, "real", "real", False),
    (False, "simulated", "real", False), (True, "simulated", "simulated", False),
    (True, "real", "simulated", True)])
def test_a_store_from_before_the_kind_holding_data_counts_as_real(tmp_path, filled, kind,
                                                                   unmarked, refused):
    """... unless the caller knows it held only simulated data (the demo's own store)."""
    path = tmp_path / "liqtui.db"
    c = _connect(path, "rwc")
    _migrate(c, path, upto=2)
    if filled:
        c.execute("INSERT INTO series (venue, symbol) VALUES ('binance', 'BTCUSDT')")
        c.execute("INSERT INTO liquidations VALUES (1, ?, 'long', 100.0, 1.0, 100.0)", (NOW,))
    c.close()
    if refused:
        before = _digest(path)
        with pytest.raises(StoreKindError) as e:
            Store(path, kind=kind, unmarked=unmarked)
        assert _digest(path) == before and f"holds {unmarked}" in str(e.value)
        return
    with Store(path, kind=kind, unmarked=unmarked) as st:
        assert st.kind == kind
    with Store(path, readonly=True) as st:
        assert st.kind == kind


def test_retention_prunes_what_is_older_than_the_limit(tmp_path):
    path = tmp_path / "liqtui.db"
    old, new = NOW - 10 * 86_400_000, NOW - 3_600_000
    with Store(path) as st:
        for t in (old, new):
            st.add_event(OpenInterest("binance", "BTCUSDT", t, 1.0))
            st.add_event(Liquidation("binance", "BTCUSDT", t, "long", 1.0, 1.0, 1.0))
            st.add_event(MarkPrice("binance", "BTCUSDT", t, 1.0))
        st.add_steps("binance", "BTCUSDT", {"time": np.array([old, new]),
                                            "close": np.array([1.0, 2.0])})
    with Store(path, retention_days=30) as st:  # inside the limit: nothing goes
        st.flush()
        assert st.info()["series"][0]["first"] == old
    with Store(path, retention_days=7) as st:
        st.flush()
        (s,) = st.info()["series"]
        assert (s["bars"], s["open_interest"], s["liquidations"], s["first"]) == (1, 1, 1, new)
        assert list(st.marks("binance", "BTCUSDT")["time"]) == [new]


def test_default_data_dir_follows_xdg(tmp_path):
    assert default_data_dir({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "liqtui"
    assert default_data_dir({"XDG_DATA_HOME": "relative"}).parts[-3:] == (
        ".local", "share", "liqtui")


def test_store_settings_layers(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[store]\ndata_dir = "~/somewhere"\nretention = "90d"\n')
    s = load_settings(env={}, config_path=cfg)
    assert s.store_path() == Path.home() / "somewhere" / "liqtui.db"
    assert s.retention_days == 90
    s = load_settings({"data_dir": str(tmp_path), "retention": "off"}, env={}, config_path=cfg)
    assert s.store_path() == tmp_path / "liqtui.db" and s.retention_days is None
    s = load_settings(env={"XDG_DATA_HOME": str(tmp_path)})
    assert s.store_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "liqtui" / "liqtui.db"
    assert s.retention_days == 365
    for bad in ('retention = "2h"', 'retention = 30', 'data_dir = ""', "dir = 'x'"):
        cfg.write_text(f"[store]\n{bad}\n")
        with pytest.raises(Exception) as e:
            load_settings(env={}, config_path=cfg)
        assert str(cfg) in str(e.value) and "[store]" in str(e.value)


def test_a_store_in_use_is_recognised_by_a_second_opener(tmp_path):
    """A writer keeps the newest header in its WAL (not yet in the file): `store info` or a
    second recorder must still see a liqtui store, not a foreign file."""
    path = tmp_path / "liqtui.db"
    first = Store(path)
    try:
        first.add_event(OpenInterest("binance", "BTCUSDT", NOW, 1.0))
        assert first.flush()
        assert path.read_bytes()[68:72] == b"\0\0\0\0"  # the file's header: not yet ours
        with Store(path, readonly=True) as st:
            assert st.info()["series"][0]["open_interest"] == 1
        with Store(path) as second:
            second.add_event(OpenInterest("binance", "BTCUSDT", NOW + 1, 2.0))
        assert len(first.open_interest("binance", "BTCUSDT")["time"]) == 2
    finally:
        first.close()


def test_a_new_store_and_its_wal_are_private(tmp_path):
    """Created 0600 (the umask gave 0644: every user could read what one trader watched),
    in a data directory made 0700; SQLite gives the -wal and -shm the main file's mode."""
    import os

    from liqtui.feeds.events import MarkPrice

    old = os.umask(0o022)
    try:
        path = tmp_path / "data" / "liqtui.db"
        with Store(path) as st:
            st.add_event(MarkPrice("binance", "BTCUSDT", 1_790_000_000_000, 95_000.0))
            assert st.flush()
            files = [path, path.with_name("liqtui.db-wal"), path.with_name("liqtui.db-shm")]
            modes = {p.name: p.stat().st_mode & 0o777 for p in files if p.exists()}
        assert modes["liqtui.db"] == 0o600 and set(modes.values()) == {0o600}, modes
        assert (path.parent.stat().st_mode & 0o777) == 0o700
    finally:
        os.umask(old)
