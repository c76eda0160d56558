"""What the engine's speed-ups rely on, checked against the plain computation."""

import numpy as np

from liqtui.sim.engine import SymbolEngine
from liqtui.sim.market import CATALOGUE
from liqtui.sim.triggers import _MERGE_AT, TriggerBook


def test_trigger_book_with_batches_bigger_than_its_buffer_matches_a_naive_book():
    # a seeded population arrives in one batch far bigger than the unsorted buffer; it must
    # land in the sorted part (not grow the buffer) and pop like everything else
    rng = np.random.default_rng(3)
    book, naive = TriggerBook(), {}
    next_id = 0
    for step in range(300):
        n = int(rng.integers(0, 60)) if step % 50 else 3 * _MERGE_AT + int(rng.integers(0, 99))
        keys = rng.normal(0, 1, n).round(2)
        ids = np.arange(next_id, next_id + n)
        next_id += n
        book.add(keys, ids)
        naive.update(zip(ids.tolist(), keys.tolist()))
        assert book.bn <= _MERGE_AT
        if step % 97 == 96:  # compaction: drop every third id, renumber the rest
            old = np.array(sorted(naive))
            mapping = np.full(next_id, -1, np.int64)
            kept = old[old % 3 != 0]
            mapping[kept] = np.arange(kept.size) + next_id
            naive = {int(mapping[i]): k for i, k in naive.items() if mapping[i] >= 0}
            book.remap(mapping)
            next_id += kept.size
        x = float(rng.normal(-2.5, 1))
        got = book.pop_le(x)
        want = sorted(i for i, k in naive.items() if k <= x)
        assert got.tolist() == want
        for i in want:
            del naive[i]
        assert len(book) == len(naive)


def test_scalar_rounding_equals_the_array_rounding_bit_for_bit():
    rng = np.random.default_rng(5)
    for sym in ("BTCUSDT", "DOGEUSDT", "XRPUSDT"):
        spec = CATALOGUE[sym]
        eng = SymbolEngine(spec, 1, "calm", 28_000_000, False)
        p = spec.price * np.exp(rng.normal(0, 0.05, 2000))
        # include exact half-ticks, where half-to-even rounding matters
        p[:200] = (np.floor(p[:200] / spec.tick_size) + 0.5) * spec.tick_size
        want = eng._round(p)
        got = np.array([eng._round1(float(v)) for v in p])
        assert got.tobytes() == want.tobytes()
