"""Capped exponential backoff with jitter.

Uncapped doubling (cryptofeed) grows to hours; no jitter makes every client of a restarted
venue reconnect in the same instant. The delay is ``min(cap, base·2^n)`` scaled by a random
factor in [½, 1], so it never drops below half the nominal value nor exceeds the cap.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float, cap: float, *, rng: random.Random | None = None):
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base ≤ cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        nominal = min(self.cap, self.base * 2.0 ** min(self.attempts, 60))
        self.attempts += 1
        return nominal * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self.attempts = 0
