"""The simulated tape is pinned: speed-ups of the engine must generate exactly what it did.

The digests were taken from the engine before its speed-up (ENGINE_VERSION 2). A change that
alters the output on purpose must bump ENGINE_VERSION (the cache key) and re-pin them.
"""

import hashlib

import numpy as np
import pytest

from liqtui.sim.engine import ENGINE_VERSION
from liqtui.sim.market import CATALOGUE, _build_engine

DAY = 86_400_000
START = 1_700_006_400_000 // DAY * DAY


def _digest(symbol: str, seed: int, regime: str, minutes: int) -> str:
    eng, _, _ = _build_engine(CATALOGUE[symbol], seed, regime, START, START + minutes * 60_000, None)
    h = hashlib.sha256()

    def put(name, a):
        h.update(name.encode())
        h.update(np.ascontiguousarray(a).tobytes())

    for f in sorted(eng.tape):
        put(f, eng.tape[f][:eng.n])
    for f, a in sorted(eng.liquidations().items()):
        put(f, a)
    for f in sorted(eng.pos):
        put(f, eng.pos[f][:eng.np])
    for k in sorted(eng.recent):  # the live minutes: per-second paths and their totals
        r = eng.recent[k]
        for f in ("path", "mark", "index"):
            put(f, r[f])
        h.update(repr([r[f] for f in ("n_other", "volume", "taker", "quote", "tb_quote",
                                      "first_id", "trades")]).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("symbol, seed, regime, minutes, want", [
    ("BTCUSDT", 1, "mixed", 1440, "3bdbc8edaa89d2ac"),
    ("ETHUSDT", 2, "volatile", 720, "b8dc4066323da348"),
    ("NEWUSDT", 3, "calm", 600, "bd7d3844be2504fd"),
])
def test_same_seed_same_tape_as_before_the_speed_up(symbol, seed, regime, minutes, want):
    assert ENGINE_VERSION == 2
    assert _digest(symbol, seed, regime, minutes) == want
