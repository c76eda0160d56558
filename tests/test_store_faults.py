"""The store against bad rows and bad files (issue 12, items 7 to 9): rows not fit to store are
refused and counted, and those an older version stored are skipped on read; a write-protected
store is read (and said to be write-protected, not damaged), a full disk is said as such; a
store damaged past its header gives a message naming it and a non-zero exit, from every
command. Real files, the CLI as a real subprocess."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from liqtui.feeds.events import Liquidation, MarkPrice, OpenInterest
from liqtui.store import Store
from strategies import random_bars

NOW = int(time.time() * 1000) // 60_000 * 60_000
LEVELS = ["levels", "--source", "store", "--symbol", "BTCUSDT"]


def _bars(n=400):
    bars = random_bars(1, n_steps=n, long_gaps=0, short_gaps=1, bad_rows=0)
    shift = NOW - 3_600_000 - int(bars["time"][-1])  # the newest an hour ago
    bars["time"] = bars["time"] + shift // 300_000 * 300_000
    return bars


def _store(path, kind="real"):
    """A store of 400 steps of binance BTCUSDT, checkpointed (no -wal left)."""
    with Store(path, kind=kind) as st:
        st.add_steps("binance", "BTCUSDT", _bars())
    c = sqlite3.connect(path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return path


@pytest.fixture
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if not k.startswith("LIQTUI_")}
    e["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("cfg"))
    e["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    return e


def _run(args, env, preexec_fn=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "liqtui", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, preexec_fn=preexec_fn)


# ------------------------------------------------------------------ 7: bad rows


def test_rows_not_fit_to_store_are_refused_and_counted(tmp_path):
    bars = _bars(n=50)
    n = len(bars["time"])
    bad = {1: ("close", np.nan), 2: ("low", -1.0), 3: ("volume", np.inf), 4: ("high", 1e308),
           5: ("open_interest", -3.0), 6: ("quote_volume", 1e300), 7: ("open", 0.0),
           8: ("mark_low", -np.inf)}
    for i, (k, v) in bad.items():
        bars[k][i] = v
    bars["time"][9] = 4_102_444_800_000  # 2100-01-01
    bars["time"][10] = 0
    t = NOW - 3_600_000
    with Store(tmp_path / "s.db") as st:
        assert st.add_steps("binance", "BTCUSDT", bars) == n - 10
        assert st.add_event(OpenInterest("binance", "BTCUSDT", t, 1000.0))
        assert not st.add_event(OpenInterest("binance", "BTCUSDT", t + 1, float("nan")))
        assert not st.add_event(OpenInterest("binance", "BTCUSDT", t + 2, -1.0))
        assert not st.add_event(MarkPrice("binance", "BTCUSDT", t, float("inf"), 1.0))
        assert not st.add_event(MarkPrice("binance", "BTCUSDT", 4_102_444_800_000, 1.0, 1.0))
        assert not st.add_event(Liquidation("binance", "BTCUSDT", t, "long", -5.0, 1.0, 5.0))
        assert st.add_event(MarkPrice("binance", "BTCUSDT", t, 100.0, float("nan")))
        assert st.rejected == 10 + 5
        assert st.flush()
        got = st.steps("binance", "BTCUSDT")
        assert st.skipped == 0
        assert len(st.open_interest("binance", "BTCUSDT")["time"]) == 1
        assert st.info()["series"][0]["bars"] == n - 10
    good = np.ones(n, bool)
    good[1:11] = False
    np.testing.assert_array_equal(got["time"], bars["time"][good])
    np.testing.assert_array_equal(got["close"], bars["close"][good])


def _older_version_rows(path):
    """What an older liqtui stored unchecked (NaN is stored by SQLite as NULL)."""
    c = sqlite3.connect(path)
    times = [r[0] for r in c.execute("SELECT time FROM steps ORDER BY time")]
    for t, sql in zip(times[-6:], ["close = NULL", "high = 1e308", "volume = -5",
                                   "open_interest = 9e999", "low = -9e999", "open = 0"]):
        c.execute(f"UPDATE steps SET {sql} WHERE time = ?", (t,))
    c.execute("INSERT INTO steps SELECT series, interval_ms, 4102444800000, open, high, low, "
              "close, volume, quote_volume, taker_buy_quote_volume, open_interest, mark_high, "
              "mark_low FROM steps WHERE time = ?", (times[0],))  # 2100-01-01
    c.execute("INSERT INTO open_interest VALUES (1, ?, 9e999)", (times[0],))
    c.execute("INSERT INTO open_interest VALUES (1, ?, 12.0)", (times[1],))
    c.commit()
    c.close()
    return times


def test_bad_rows_an_older_version_stored_are_skipped_on_read(tmp_path):
    path = _store(tmp_path / "liqtui.db")
    times = _older_version_rows(path)
    with Store(path, readonly=True) as st:
        assert st.last_step("binance", "BTCUSDT") == times[-1]  # not 2100
        got = st.steps("binance", "BTCUSDT")
        oi = st.open_interest("binance", "BTCUSDT")
        assert st.skipped == 7 + 1
    np.testing.assert_array_equal(got["time"], times[:-6])
    assert all(np.isfinite(got[k]).all() for k in ("open", "high", "low", "close", "volume"))
    np.testing.assert_array_equal(oi["base"], [12.0])


def test_levels_from_a_store_holding_bad_rows_skips_them_and_says_so(tmp_path, env):
    _older_version_rows(_store(tmp_path / "liqtui.db"))
    r = _run([*LEVELS, "--json", "--data-dir", str(tmp_path)], env)
    assert r.returncode == 0, r.stderr
    assert "6 stored step(s) of binance BTCUSDT skipped" in r.stderr  # the 2100 one: out of range
    assert json.loads(r.stdout)["levels"]  # the window ends at the newest good step
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ 8: permissions, no space

_libc = ctypes.CDLL(None, use_errno=True)


def _without_privileges():
    """In the child: as root, give up every capability (the bounding set, so the exec that
    follows grants none), so the file permissions bite as they do for any user."""
    if os.geteuid() == 0:
        for cap in range(64):
            if _libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # PR_CAPBSET_DROP
                break


@pytest.fixture
def write_protected(tmp_path):
    """A store (and its directory) this user cannot write; skips where that cannot be made."""
    d = tmp_path / "ro"
    d.mkdir()
    _store(d / "liqtui.db")
    os.chmod(d / "liqtui.db", 0o444)
    os.chmod(d, 0o555)
    try:
        probe = subprocess.run([sys.executable, "-c", f"open({str(d / 'x')!r}, 'w')"],
                               preexec_fn=_without_privileges, capture_output=True)
        if probe.returncode == 0:
            pytest.skip("this user writes a 0555 directory even without capabilities")
        yield d
    finally:
        os.chmod(d, 0o755)
        os.chmod(d / "liqtui.db", 0o644)


def test_a_write_protected_store_is_read_and_not_called_damaged(write_protected, env):
    d = write_protected
    before = sorted(p.name for p in d.iterdir())
    r = _run(["store", "info", "--data-dir", str(d)], env, _without_privileges)
    assert r.returncode == 0, r.stderr
    n = len(_bars()["time"])
    assert re.search(rf"binance\s+BTCUSDT\s+{n}\s", r.stdout), r.stdout
    r = _run([*LEVELS, "--data-dir", str(d)], env, _without_privileges)
    assert r.returncode == 0, r.stderr
    # writing is refused, saying why, without calling it damaged
    r = _run(["record", "--symbols", "BTCUSDT", "--rest-url", "http://127.0.0.1:9",
              "--duration", "1", "--data-dir", str(d)], env, _without_privileges)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(d / "liqtui.db") in r.stderr and "permission denied" in r.stderr
    assert "damaged (" not in r.stderr and "Move it away" not in r.stderr
    assert sorted(p.name for p in d.iterdir()) == before


def test_a_write_protected_store_with_unread_wal_says_so(write_protected, env):
    d = write_protected
    os.chmod(d, 0o755)
    (d / "liqtui.db-wal").write_bytes(b"\0" * 4096)  # what a killed writer may leave
    os.chmod(d, 0o555)
    r = _run(["store", "info", "--data-dir", str(d)], env, _without_privileges)
    assert r.returncode == 2
    assert "liqtui.db-wal" in r.stderr and "not damaged" in r.stderr


def test_a_full_disk_at_open_is_said_as_such(tmp_path, env):
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("a full disk is made with a small tmpfs, which needs root and unshare")
    d = tmp_path / "full"
    d.mkdir()
    script = (f"mount -t tmpfs -o size=64k tmpfs {d} || exit 97; "
              f"dd if=/dev/zero of={d}/fill bs=4k count=100 2>/dev/null; "
              f"exec {sys.executable} -m liqtui record --demo --symbols BTCUSDT --duration 1 "
              f"--data-dir {d}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, text=True,
                       capture_output=True, timeout=120)
    if r.returncode == 97 or "unshare failed" in r.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no space left" in r.stderr and "Move it away" not in r.stderr


# ------------------------------------------------------------------ 9: damaged past its header


def _damage(path):
    """Overwrite the second half of the file (the step pages; the header and schema live)."""
    b = bytearray(path.read_bytes())
    page = int.from_bytes(b[16:18], "big")
    start = max(3 * page, len(b) // 2 // page * page)
    b[start:] = b"\x5a" * (len(b) - start)
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("command", [["store", "info"], ["store", "info", "--json"], LEVELS])
def test_a_store_damaged_past_its_header_is_named_by_readers(tmp_path, env, command):
    path = _store(tmp_path / "liqtui.db")
    _damage(path)
    r = _run([*command, "--data-dir", str(tmp_path)], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert str(path) in r.stderr and "damaged" in r.stderr


def test_recording_into_a_store_damaged_past_its_header_exits_non_zero(tmp_path, env):
    path = _store(tmp_path / "liqtui.db", kind="simulated")
    _damage(path)
    r = _run(["record", "--demo", "--symbols", "BTCUSDT", "--duration", "3", "--data-dir",
              str(tmp_path)], env)
    assert r.returncode != 0, r.stdout + r.stderr
    assert str(path) in r.stdout + r.stderr and "damaged" in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
