"""What the live-ingest benchmarks share: a server in its own process (on its own core when
there is one), one timed ``ingest`` run of a live client, and the table of runs."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

WARM_UP = 20_000  # messages of the run before the measured ones (imports, connection)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")  # what the replays carry


def parser(doc: str) -> argparse.ArgumentParser:
    """The benchmark's command line: ``--count`` messages per run, ``--runs``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--count", type=int, default=300_000, help="messages per run")
    ap.add_argument("--runs", type=int, default=3)
    return ap


def _pinnable() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1


def pin_client() -> int:
    """The client (this process) on core 1; the server gets core 0. Returns the core count."""
    if _pinnable():
        os.sched_setaffinity(0, {1})
    return os.cpu_count() or 1


def spawn(script: str, *args, numbers: int = 1, cpu: int | None = 0,
          what: str = "the simulated exchange") -> tuple[subprocess.Popen, list[int]]:
    """Run the Python source ``script`` with ``args`` in its own process, pinned to core
    ``cpu``; it prints ``numbers`` integers on its first line when it serves (the port
    first), and stops when its stdin closes (``stop_sim``). Returns (process, the integers)."""
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if cpu is not None and _pinnable():
        os.sched_setaffinity(proc.pid, {cpu})
    words = proc.stdout.readline().split()
    if len(words) != numbers or not all(w.isdigit() for w in words):
        proc.kill()
        raise SystemExit(f"{what} did not start")
    return proc, [int(w) for w in words]


def stop_sim(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def timed_ingest(live_class, port: int, path: str, bad=("malformed", "unknown"),
                       **kw) -> dict:
    """A ``live_class`` client (with ``kw``) for ``SYMBOLS`` reading ``path`` on the server at
    ``port`` with its ``ingest``, timed from the first event to the end. The counters named in
    ``bad`` are summed as the bad messages."""
    first = [0.0]
    n_events = [0]

    def on_event(ev):  # what an app does at the least: look at each event
        if not n_events[0]:
            first[0] = time.perf_counter()
        n_events[0] += 1

    url = f"ws://127.0.0.1:{port}"
    live = live_class(url, SYMBOLS, on_event=on_event, **kw)
    t0 = time.perf_counter()
    await live.ingest(url + path)
    t1 = time.perf_counter()
    c = live.counters
    bars = [live.bars.forming(s) for s in live.symbols]
    return {"frames": c["frames"], "events": c["events"], "bad": sum(c[k] for k in bad),
            "dups": c["duplicates"], "wall": t1 - (first[0] or t0),
            "bars": sum(b is not None for b in bars)}


def measure(one_run, port: int, count: int, runs: int) -> list[dict]:
    """A warm-up run, then ``runs`` runs of ``count`` messages of ``one_run(port, count)``."""
    asyncio.run(one_run(port, min(count, WARM_UP)))
    return [asyncio.run(one_run(port, count)) for _ in range(runs)]


def print_runs(rows: list[dict], goal: int) -> float:
    """The table of runs and their median rate against ``goal``; returns the median."""
    rates = [r["frames"] / r["wall"] for r in rows]
    print(f"{'run':>4} {'messages':>10} {'events':>10} {'bad':>5} {'dups':>5} {'wall s':>8} "
          f"{'msg/s':>10}")
    for i, (r, rate) in enumerate(zip(rows, rates), 1):
        print(f"{i:>4} {r['frames']:>10,} {r['events']:>10,} {r['bad']:>5} {r['dups']:>5} "
              f"{r['wall']:>8.3f} {rate:>10,.0f}")
    med = statistics.median(rates)
    print(f"median {med:,.0f} msg/s (goal ≥ {goal:,}): {'ok' if med >= goal else 'BELOW GOAL'}")
    return med
