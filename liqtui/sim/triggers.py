"""A price (or time) trigger book: "give me every id whose key is ≤ x, and forget them".

Liquidation prices, stops, take-profits and planned close times are all triggers of that kind
once the key's sign is chosen (a long's stop or liquidation fires when the low falls to its
price, so its key is −price and the query −low). Scanning every open position every simulated
minute would dominate the cost of a 30-day history, so the book keeps a sorted array (a query
is a ``searchsorted`` and the fired entries are a prefix: a moving head, no copying) plus a
small unsorted buffer of recent additions that is merged in when it fills. (A sorted buffer
was tried: inserting costs more than scanning ≤ 1024 entries.) Entries of positions closed
some other way stay until they fire or the book is remapped; callers filter fired ids by
liveness. Ids come back sorted, so what a query returns does not depend on the book's layout
(a book rebuilt from saved positions behaves the same).
"""

from __future__ import annotations

import numpy as np

_MERGE_AT = 1024
_EMPTY = np.empty(0, np.int64)
_MIN = np.minimum.reduce  # ndarray.min() without its Python wrapper


class TriggerBook:
    __slots__ = ("keys", "ids", "head", "hkey", "bkeys", "bids", "bn", "bmin", "size")

    def __init__(self, keys=None, ids=None, buffer: int = _MERGE_AT):
        # a bigger buffer merges less often but costs more to scan: worth it for a book whose
        # buffer is rarely scanned (stops and liquidations are seldom near the price)
        self.size = buffer
        self.rebuild(np.empty(0) if keys is None else keys, _EMPTY if ids is None else ids)

    def rebuild(self, keys, ids) -> None:
        keys = np.asarray(keys, dtype=np.float64)
        ids = np.asarray(ids, dtype=np.int64)
        order = np.lexsort((ids, keys))
        self.keys, self.ids, self.head = keys[order], ids[order], 0
        self._head_key()
        self.bkeys = np.empty(self.size, np.float64)
        self.bids = np.empty(self.size, np.int64)
        self.bn, self.bmin = 0, np.inf

    def _head_key(self) -> None:
        # the smallest settled key as a Python float: "nothing fires" is two float comparisons
        self.hkey = float(self.keys[self.head]) if self.head < self.keys.size else np.inf

    def add(self, keys: np.ndarray, ids: np.ndarray) -> None:
        n = keys.size
        if n == 0:
            return
        if self.bn + n > self.size:
            self._merge()
            if n > self.size:  # a big batch (a seeded population) goes straight to the sorted
                self._insert(keys, np.asarray(ids, dtype=np.int64))  # part: the buffer stays small
                return
        self.bkeys[self.bn:self.bn + n] = keys
        self.bids[self.bn:self.bn + n] = ids
        self.bn += n
        m = float(_MIN(keys))
        if m < self.bmin:
            self.bmin = m

    def min_key(self) -> float:
        return min(self.hkey, self.bmin)

    def pop_le(self, x: float) -> np.ndarray:
        """Remove and return (sorted) the ids of every entry with key ≤ x."""
        if x < self.bmin and x < self.hkey:
            return _EMPTY
        ids = None
        if x >= self.hkey:
            k = int(self.keys.searchsorted(x, side="right"))
            ids = self.ids[self.head:k]  # a view: copied below
            self.head = k
            self._head_key()
        if x >= self.bmin:
            bk = self.bkeys[:self.bn]
            hit = bk <= x
            fired = self.bids[:self.bn][hit]
            ids = fired if ids is None else np.concatenate([ids, fired])
            keep = ~hit
            left = bk[keep]
            n = left.size
            self.bids[:n] = self.bids[:self.bn][keep]
            self.bkeys[:n] = left
            self.bn = n
            self.bmin = float(_MIN(left)) if n else np.inf
        else:
            ids = ids.copy()
        ids.sort()  # (np.sort's wrapper costs more than the sort of a few dozen ids)
        return ids

    def _merge(self) -> None:
        if self.bn == 0:
            return
        self._insert(self.bkeys[:self.bn], self.bids[:self.bn])
        self.bn, self.bmin = 0, np.inf

    def _insert(self, bk, bi) -> None:
        # a merge by hand: np.insert (and a lexsort of the batch) cost 3× more. The order of
        # equal keys does not matter: a query returns its ids sorted.
        o = np.argsort(bk)
        bk, bi = bk[o], bi[o]
        keys, ids = self.keys[self.head:], self.ids[self.head:]
        n, m = keys.size, bk.size
        at = np.searchsorted(keys, bk, side="right") + np.arange(m)
        old = np.ones(n + m, bool)
        old[at] = False
        self.keys, self.ids = np.empty(n + m), np.empty(n + m, np.int64)
        self.keys[at], self.ids[at] = bk, bi
        self.keys[old], self.ids[old] = keys, ids
        self.head = 0
        self._head_key()

    def remap(self, mapping: np.ndarray) -> None:
        """Renumber ids after the position arrays were compacted (``mapping[old]`` = new id,
        −1 for a closed position, whose entries are dropped). Keeps the sorted order."""
        self._merge()
        new = mapping[self.ids[self.head:]]
        keep = new >= 0
        self.keys, self.ids, self.head = self.keys[self.head:][keep], new[keep], 0
        self._head_key()

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """All pending (key, id) pairs."""
        return (np.concatenate([self.keys[self.head:], self.bkeys[:self.bn]]),
                np.concatenate([self.ids[self.head:], self.bids[:self.bn]]))

    def __len__(self) -> int:
        return self.keys.size - self.head + self.bn
