"""``--demo``: the simulated exchange in-process, its symbols generated in child processes.

No Textual, no aiohttp: the CLI starts the first symbol's generation (``sim.child``) before
its heavy imports, so the two overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..sim.child import Build

log = logging.getLogger("liqtui.feeds")


def demo_symbols(symbols) -> tuple[str, ...]:
    """The symbols the simulated exchange can serve, of those asked for."""
    from ..sim.symbols import CATALOGUE

    return tuple(dict.fromkeys(s for s in symbols if s in CATALOGUE)) or ("BTCUSDT",)


class Demo:
    """The simulated exchange in-process on a free loopback port (``--demo``).

    Its market starts empty; each symbol is generated in a child process (``Build``)
    when somebody waits for it (``ensure``: the session, before a backfill; the first one
    usually already started by the CLI, ``first``) and, after the first paint, the rest of the
    watchlist one after another (``build_rest``). A switch to a symbol not built yet shows its
    progress, not an error.
    """

    def __init__(self, symbols, *, seed: int = 1, history_days: float = 1.5,
                 time_scale: float = 1.0, cache_dir=None, faults=None, market=None, note=None,
                 first=None):
        self.symbols, self.seed, self.history_days = demo_symbols(symbols), seed, history_days
        self.note = note or (lambda symbol, text, level=logging.INFO: log.log(level, text))
        self.time_scale, self.cache_dir, self.faults = time_scale, cache_dir, faults
        self.market = market  # the CLI's (with ``first``: (symbol, process) building into it)
        self.exchange = None
        self._first = dict([first]) if first else {}
        self._ready: dict[str, asyncio.Event] = {}
        self._wanted: list[str] = []   # symbols somebody waits for, built first
        self._all = False              # build_rest() was called
        self._builder: asyncio.Task | None = None
        self._child: tuple[str, Build] | None = None  # the symbol being built
        self._stopping = False

    async def start(self) -> None:
        from ..sim.market import Market
        from ..sim.server import SimExchange

        if self.market is None:
            self.market = Market((), self.seed, history_days=self.history_days,
                                 time_scale=self.time_scale, cache_dir=self.cache_dir)
        for s in self.pending:
            self._ready[s] = asyncio.Event()
        self.exchange = SimExchange(self.market, self.faults)
        await self.exchange.start("127.0.0.1", 0)

    @property
    def pending(self) -> list[str]:
        """Symbols of the demo the market does not hold yet."""
        have = self.market.symbols if self.market else {}
        return [s for s in self.symbols if s not in have]

    def build_rest(self) -> None:
        """Generate the pending symbols in the background, one after another."""
        self._all = True
        self._kick()

    def _kick(self) -> None:
        if (self._builder is None or self._builder.done()) and not self._stopping:
            self._builder = asyncio.get_running_loop().create_task(self._build(),
                                                                   name="demo-build")

    async def _build(self) -> None:
        while not self._stopping:
            # the ones somebody waits for first, then (after the first paint) the watchlist
            todo = [s for s in self._wanted if s in self.pending] or (
                self.pending if self._all else [])
            if not todo:
                return
            sym = todo[0]
            build = self._first.pop(sym, None) or Build(self.market.jobs([sym])[0])
            self._child = (sym, build)
            try:
                got = await build.result()
            finally:
                self._child = None
            if self._stopping:
                return
            if isinstance(got, BaseException):
                self.note(sym, f"simulated market failed: {got}", logging.ERROR)
                self.symbols = tuple(s for s in self.symbols if s != sym)
            else:
                self.market.add([got])
                self.note(sym, f"simulated market ready in {got[2]:.1f} s"
                               + (" (from the cache)" if got[1] else ""))
            self._ready[sym].set()

    async def ensure(self, symbol: str, progress=None) -> None:
        """Wait until the market holds ``symbol`` (a symbol it will never hold returns at
        once: the venue's answer says the rest); ``progress(done, total)`` meanwhile."""
        ev = self._ready.get(symbol)
        if ev is None or ev.is_set():
            return
        # the newest wait first: after rapid switching the asset on screen is built next,
        # not after every asset the trader passed over (whose waits were cancelled)
        self._wanted.insert(0, symbol)
        self._kick()
        try:
            while not ev.is_set():
                child = self._child
                if progress is not None and child is not None and child[0] == symbol:
                    progress(*child[1].progress)
                try:
                    await asyncio.wait_for(ev.wait(), 0.25)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._wanted.remove(symbol)

    def clock(self) -> int:
        return self.market.now_ms() if self.market else int(time.time() * 1000)

    async def stop(self) -> None:
        self._stopping = True
        builds = [c[1] for c in (self._child,) if c] + list(self._first.values())
        for build in builds:
            build.kill()
        if self._builder is not None:  # it reaps the child and ends
            await asyncio.wait([self._builder], timeout=3.0)
            self._builder.cancel()
        for build in self._first.values():  # started by the CLI, never collected
            await build.result()
        if self.exchange is not None:
            await self.exchange.stop()
