"""A simulated symbol generated in a child process, for ``--demo``.

Light to import (the standard library and ``symbols`` only): the CLI starts the first symbol
with ``start_first`` before its own heavy imports (numpy, Textual, aiohttp), so the two overlap.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("liqtui.feeds")


def start_first(symbol: str, seed: int, history_days: float, cache_dir, regime="mixed"):
    """Start generating the demo's first symbol now, before anything heavy is imported here
    (numpy is the child's): its market's history start (``Market(start_ms=...)``) and the
    ``Build`` (``Demo(first=...)``)."""
    from ..sim.symbols import history_start, resolve

    now = int(time.time() * 1000)
    start = history_start(now, history_days, seed, regime, cache_dir, (symbol,))
    return start, Build((resolve(symbol, now), seed, regime, start, now, cache_dir))


class Build:
    """One simulated symbol (a ``Market.jobs()`` item) generated in a child process: a plain
    subprocess (no fork under Textual's threads; no GIL shared with the UI; its stdio are
    pipes, never the terminal). Threads read its output from the start, so a finished child
    never waits on a full pipe until the parent, still importing, gets round to it."""

    def __init__(self, job):
        import pickle
        import subprocess
        import sys
        import threading

        self.progress = (0, 0)  # minutes done, total
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from liqtui.sim.market import build_child; build_child()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc.stdin.write(pickle.dumps(job))
        self.proc.stdin.close()
        self._out = b""
        self._readers = [threading.Thread(target=f, daemon=True, name="demo-build")
                         for f in (self._read_out, self._read_err)]
        for t in self._readers:
            t.start()

    def _read_out(self) -> None:
        self._out = self.proc.stdout.read()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            parts = line.decode(errors="replace").split()
            if len(parts) == 3 and parts[0] == "progress":
                self.progress = (int(parts[1]), int(parts[2]))
            elif parts:
                log.warning("demo build: %s", " ".join(parts))

    def _wait(self):
        import pickle

        for t in self._readers:
            t.join()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()
        return pickle.loads(self._out) if self._out else RuntimeError(
            f"the build process ended with status {self.proc.returncode}")

    async def result(self):
        """The built symbol for ``Market.add`` (engine, cache hit, seconds), or the exception."""
        import asyncio

        try:
            return await asyncio.to_thread(self._wait)
        except Exception as e:  # noqa: BLE001 - the symbol is left out, the demo goes on
            return e

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # quit does not wait for a build nobody will see
