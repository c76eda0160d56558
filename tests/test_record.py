"""`liqtui record` as a real subprocess: SIGKILL at random moments loses at most the last second
and leaves a store that opens cleanly; SIGTERM flushes and reports; bad input exits 2; the
levels from the store equal the levels over the network."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import sys
import time

import numpy as np
import pytest

import liqtui.sim.market as sim_market
import liqtui.sim.server as sim_server
from liqtui.feeds import BinanceLive
from liqtui.feeds.events import Liquidation, MarkPrice
from liqtui.feeds.venues import VENUES
from liqtui.store import Store, _connect, _migrate

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """No user config or LIQTUI_* settings; a shared cache for the simulated market."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("LIQTUI_")}
    e["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("cfg"))
    e["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    return e


class Recording:
    """A `liqtui record` subprocess whose output lines are collected as they come."""

    def __init__(self, args, env):
        self.args, self.env = args, env
        self.lines: list[str] = []
        self.proc = None
        self._reader = None

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "liqtui", "record", *self.args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self):
        async for line in self.proc.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    async def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match:
        end = time.monotonic() + timeout
        while True:
            for line in self.lines:
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(f"exited {self.proc.returncode} without {pattern!r}:\n"
                                     + "\n".join(self.lines))
            if time.monotonic() > end:
                raise AssertionError(f"no {pattern!r} in:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.05)

    async def finish(self, timeout: float = 60.0) -> int:
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        return rc


def _integrity(path) -> str:
    c = sqlite3.connect(path)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


async def test_sigkill_at_random_moments_loses_at_most_the_last_second(tmp_path, env):
    """Our own client listens to the same simulated exchange as the recorder; at each kill,
    every mark and liquidation it had received more than a second earlier must be stored."""
    rng = random.Random(os.getpid())
    path = tmp_path / "liqtui.db"
    kept_liqs: set = set()
    kept_minutes = 0
    checked = {"marks": 0, "liquidations": 0}
    for kill in range(3):
        rec = await Recording(["--demo", "--symbols", ",".join(SYMBOLS), "--demo-days", "0.2",
                               "--demo-speed", "30", "--backfill", "1h", "--every", "1",
                               "--data-dir", str(tmp_path)], env).start()
        m = await rec.wait_for(r"simulated exchange: (\S+) · (\S+)")
        rest_url, ws_url = m.group(1), m.group(2)
        seen: list[tuple[float, object]] = []
        ref = BinanceLive(ws_url, SYMBOLS, rest_url=rest_url,
                          on_event=lambda ev: seen.append((time.time(), ev)))
        ref_task = asyncio.create_task(ref.run())
        await rec.wait_for(r"binance LIVE")
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        killed_at = time.time()
        rec.proc.send_signal(signal.SIGKILL)
        assert await rec.finish() == -signal.SIGKILL
        await ref.stop()
        await asyncio.gather(ref_task, return_exceptions=True)

        assert _integrity(path) == "ok"
        with Store(path, kind="simulated") as st:  # opens cleanly for writing (as the next run)
            for sym in SYMBOLS:
                before = [ev for t, ev in seen if t < killed_at - 1.0 and ev.symbol == sym]
                marks = [ev for ev in before if isinstance(ev, MarkPrice)]
                assert marks, f"{sym}: our client saw no mark price"
                newest = marks[-1]
                stored = st.marks("binance", sym)
                minute = newest.time - newest.time % 60_000
                rows = stored["time"] == minute
                assert rows.any(), f"{sym}: the minute of the mark at {newest.time} is missing"
                assert stored["last_time"][rows][0] >= newest.time, (
                    f"{sym}: stored up to {stored['last_time'][rows][0]}, our client had "
                    f"{newest.time} more than a second before the kill")
                checked["marks"] += 1
                lq = st.liquidations("binance", sym)
                have = set(zip(lq["time"].tolist(), lq["side"].tolist(), lq["price"].tolist(),
                               lq["qty"].tolist()))
                for ev in before:
                    if isinstance(ev, Liquidation):
                        assert (ev.time, ev.side, ev.price, ev.qty) in have, ev
                        checked["liquidations"] += 1
            info = st.info()
        # nothing stored by an earlier run was lost
        now_liqs = set()
        with Store(path, readonly=True) as st:
            for sym in SYMBOLS:
                lq = st.liquidations("binance", sym)
                now_liqs |= {(sym, *x) for x in zip(lq["time"].tolist(), lq["side"].tolist(),
                                                    lq["price"].tolist(), lq["qty"].tolist())}
            minutes = sum(len(st.marks("binance", s)["time"]) for s in SYMBOLS)
        assert kept_liqs <= now_liqs
        assert minutes >= kept_minutes
        kept_liqs, kept_minutes = now_liqs, minutes
        assert all(s["bars"] > 0 for s in info["series"])
    assert checked["marks"] == 3 * len(SYMBOLS)


async def test_sigterm_flushes_and_reports(tmp_path, env):
    rec = await Recording(["--demo", "--symbols", "BTCUSDT,ETHUSDT", "--demo-days", "0.2",
                           "--demo-speed", "30", "--backfill", "2h", "--every", "1",
                           "--data-dir", str(tmp_path)], env).start()
    await rec.wait_for(r"marks [1-9]")
    rec.proc.send_signal(signal.SIGTERM)
    assert await rec.finish() == 0
    text = "\n".join(rec.lines)
    assert "Traceback" not in text
    i = next(i for i, x in enumerate(rec.lines) if x.startswith("stopped · captured this run"))
    assert f"flushed to {tmp_path / 'liqtui.db'}" in rec.lines[i]
    report = {r.split()[1]: r.split()[2:] for r in rec.lines[i + 2:]}
    assert set(report) == {"BTCUSDT", "ETHUSDT"}
    with Store(tmp_path / "liqtui.db", readonly=True) as st:
        for sym, (steps, oi, marks, liqs) in report.items():
            assert int(marks.replace(",", "")) > 0
            assert st.info()["series"]
            # everything reported is in the store: marks as minute bars, each step once
            stored = st.steps("binance", sym)
            assert len(stored["time"]) >= 20  # 2 h of 5-minute steps, more as they close
            assert len(st.liquidations("binance", sym)["time"]) == int(liqs.replace(",", ""))
            assert len(st.open_interest("binance", sym)["time"]) == int(oi.replace(",", ""))
            assert len(st.marks("binance", sym)["time"]) >= 1


# ------------------------------------------------------------------ bad input


def _run(args, env, timeout=120):
    import subprocess

    return subprocess.run([sys.executable, "-m", "liqtui", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args, needle", [
    (["record", "--demo", "--symbols", "BTCUSDT,NOPEUSDT"], "NOPEUSDT"),
    (["record", "--symbols", "BTCUSDT", "--backfill", "45d"], "--backfill '45d'"),
    (["record", "--symbols", "BTC-USDT"], "BTC-USDT"),
    (["record"], "--symbols"),
    (["record", "--symbol-file", "/nonexistent/perps.txt"], "/nonexistent/perps.txt"),
    (["record", "--venue", "all", "--symbols", "BTCUSDT", "--rest-url", "http://x"], "--venue"),
    (["record", "--symbols", "BTCUSDT", "--rest-url", "http://x/api"], "http://x/api"),
    (["store", "info", "--config", "/nonexistent.toml"], "/nonexistent.toml"),
    (["levels", "--source", "store", "--symbol", "BTCUSDT"], "nothing stored"),
])
def test_bad_input_exits_2_naming_the_value(tmp_path, env, args, needle):
    r = _run([*args, "--data-dir", str(tmp_path)], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "liqtui.db").exists()


def test_a_bad_line_in_the_symbol_file_is_named(tmp_path, env):
    f = tmp_path / "perps.txt"
    f.write_text("# mine\nBTCUSDT ETHUSDT\nSOL/USDT\n")
    r = _run(["record", "--symbol-file", str(f), "--data-dir", str(tmp_path)], env)
    assert r.returncode == 2
    assert "line 3" in r.stderr and "SOL/USDT" in r.stderr


@pytest.mark.parametrize("command", [["record", "--demo", "--symbols", "BTCUSDT"],
                                     ["store", "info"], ["store", "info", "--json"],
                                     ["levels", "--source", "store", "--symbol", "BTCUSDT"]])
def test_a_foreign_file_is_refused_by_every_command_and_left_alone(tmp_path, env, command):
    path = tmp_path / "liqtui.db"
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE contacts (name TEXT)")
    c.commit()
    c.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    r = _run([*command, "--data-dir", str(tmp_path)], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(path) in r.stderr and "another application" in r.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


# ------------------------------------------------------------------ the store as a source


async def test_levels_from_the_store_equal_levels_over_the_network(tmp_path, env):
    market = sim_market.Market(("BTCUSDT",), seed=3, history_days=1.5)
    market.set_now(market.now_ms() // 300_000 * 300_000)  # frozen on a step boundary
    sx = sim_server.SimExchange(market)
    await sx.start()
    try:
        rec = await Recording(["--symbols", "BTCUSDT", "--backfill", "1d", "--duration", "3",
                               "--rest-url", sx.rest_url, "--ws-url", sx.ws_url,
                               "--data-dir", str(tmp_path)], env).start()
        assert await rec.finish(180) == 0, "\n".join(rec.lines)
        assert re.search(r"BTCUSDT: backfilled 288 closed steps", "\n".join(rec.lines))

        async def levels(*extra):
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "liqtui", "levels", "--symbol", "BTCUSDT", "--range",
                "24h", "--json", "--top", "20", *extra, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(p.communicate(), 120)
            assert p.returncode == 0, err.decode()
            return json.loads(out)

        net = await levels("--rest-url", sx.rest_url)
        stored = await levels("--source", "store", "--data-dir", str(tmp_path))
    finally:
        await sx.stop()
    assert len(net["levels"]) == 20
    assert stored == net

    r = _run(["store", "info", "--json", "--data-dir", str(tmp_path)], env)
    doc = json.loads(r.stdout)
    assert set(doc) == {"path", "bytes", "kind", "series"} and doc["bytes"] > 0
    assert doc["kind"] == "real"
    (s,) = doc["series"]
    assert set(s) == {"venue", "symbol", "bars", "open_interest", "liquidations", "first", "last"}
    assert (s["venue"], s["symbol"], s["bars"]) == ("binance", "BTCUSDT", 288)
    assert s["first"] == net["lookback"]["start"]
    r = _run(["store", "info", "--data-dir", str(tmp_path)], env)
    assert r.returncode == 0 and re.search(r"binance\s+BTCUSDT\s+288\s", r.stdout), r.stdout


async def test_demo_data_go_to_their_own_store(tmp_path, env):
    e = dict(env, XDG_DATA_HOME=str(tmp_path))
    demo = tmp_path / "liqtui" / "demo" / "liqtui.db"
    demo.parent.mkdir(parents=True)
    c = _connect(demo, "rwc")  # one from before stores recorded their kind: only ever simulated
    _migrate(c, demo, upto=2)
    c.execute("INSERT INTO series (venue, symbol) VALUES ('binance', 'BTCUSDT')")
    c.execute("INSERT INTO liquidations VALUES (1, 1790000000000, 'long', 100.0, 1.0, 100.0)")
    c.close()
    rec = await Recording(["--demo", "--symbols", "BTCUSDT", "--demo-days", "0.2",
                           "--backfill", "1h", "--duration", "2"], e).start()
    assert await rec.finish(180) == 0, "\n".join(rec.lines)
    assert f"→ {demo}" in "\n".join(rec.lines)
    assert not (tmp_path / "liqtui" / "liqtui.db").exists()
    with Store(demo, readonly=True) as st:
        assert st.info()["series"][0]["bars"] >= 11 and st.kind == "simulated"


async def test_simulated_data_never_enter_a_store_of_real_captures(tmp_path, env):
    """--data-dir (like LIQTUI_DATA_DIR or the config) names the store itself: --demo into a
    store of real captures is refused (exit 2, the path and what it holds named, the file
    untouched); into an empty directory it makes a simulated store, which a real record
    refuses in turn."""
    real_dir, demo_dir = tmp_path / "real", tmp_path / "demo"
    real = real_dir / "liqtui.db"
    with Store(real) as st:  # real captures (a plain writer: the app, record without --demo)
        st.add_event(MarkPrice("binance", "BTCUSDT", 1_790_000_000_000, 100.0))
    before = hashlib.sha256(real.read_bytes()).hexdigest()
    demo = ["record", "--demo", "--symbols", "BTCUSDT", "--demo-days", "0.2", "--backfill",
            "1h", "--duration", "2"]
    r = _run([*demo, "--data-dir", str(real_dir)], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(real) in r.stderr and "holds real captures" in r.stderr
    assert "Traceback" not in r.stderr
    assert hashlib.sha256(real.read_bytes()).hexdigest() == before

    rec = await Recording([*demo[1:], "--data-dir", str(demo_dir)], env).start()
    assert await rec.finish(180) == 0, "\n".join(rec.lines)
    r = _run(["store", "info", "--json", "--data-dir", str(demo_dir)], env)
    assert json.loads(r.stdout)["kind"] == "simulated"
    r = _run(["store", "info", "--data-dir", str(demo_dir)], env)
    assert r.returncode == 0 and "simulated" in r.stdout.splitlines()[0], r.stdout

    sim = demo_dir / "liqtui.db"
    before = hashlib.sha256(sim.read_bytes()).hexdigest()
    r = _run(["record", "--symbols", "BTCUSDT", "--rest-url", "http://127.0.0.1:9",
              "--ws-url", "ws://127.0.0.1:9", "--data-dir", str(demo_dir)], env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(sim) in r.stderr and "holds simulated data" in r.stderr
    assert hashlib.sha256(sim.read_bytes()).hexdigest() == before


async def test_all_venues_are_recorded_side_by_side(tmp_path, env):
    rec = await Recording(["--demo", "--venue", "all", "--symbols", "BTCUSDT", "--demo-days",
                           "0.2", "--demo-speed", "30", "--backfill", "1h", "--every", "1",
                           "--data-dir", str(tmp_path)], env).start()
    for venue in VENUES:
        await rec.wait_for(rf"{venue} BTCUSDT: backfilled 1[123] closed steps")
    await rec.wait_for(rf"{list(VENUES)[-1]} LIVE")
    await asyncio.sleep(2)
    rec.proc.send_signal(signal.SIGTERM)
    assert await rec.finish() == 0
    text = "\n".join(rec.lines)
    assert "Traceback" not in text and "Unclosed" not in text, text
    with Store(tmp_path / "liqtui.db", readonly=True) as st:
        series = {s["venue"]: s for s in st.info()["series"]}
        assert set(series) == set(VENUES)
        assert all(s["bars"] >= 11 and s["symbol"] == "BTCUSDT" for s in series.values())
        closes = {v: st.steps(v, "BTCUSDT")["close"][-1] for v in series}
    # one simulated market seen through every venue: the same price but for each basis
    assert max(closes.values()) / min(closes.values()) < 1.01


async def test_a_live_step_before_a_backfill_does_not_cut_the_history(tmp_path, env):
    """Every symbol gets its whole backfill, whichever arrives first: a closed step from the
    live feed (which starts first), or the symbol's backfill. OKX's open-interest limits make
    the first symbol's backfill take seconds, so the second symbol's newest closed step is
    stored live before its backfill starts; the recorder used to start that backfill after
    the stored step, and the symbol kept one step of history instead of a day."""
    rec = await Recording(["--demo", "--venue", "okx", "--symbols", "BTCUSDT,ETHUSDT",
                           "--demo-days", "1.2", "--every", "1",
                           "--data-dir", str(tmp_path)], env).start()
    await rec.wait_for(r"okx ETHUSDT: backfilled \d+ closed steps", timeout=90)
    rec.proc.send_signal(signal.SIGTERM)
    assert await rec.finish() == 0
    text = "\n".join(rec.lines)
    assert "stored up to" not in text, text
    with Store(tmp_path / "liqtui.db", readonly=True) as st:
        for sym in ("BTCUSDT", "ETHUSDT"):
            t = st.steps("okx", sym)["time"]
            assert len(t) >= 280, (sym, len(t))          # a day of 5-minute steps
            assert (np.diff(t) == 300_000).all(), sym     # and no hole in it


def test_the_record_venue_choices_are_the_registry():
    from liqtui.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    venue = next(a for a in sub.choices["record"]._actions if a.dest == "venue")
    assert list(venue.choices) == [*VENUES, "all"]
