"""Publish and subscribe, in-process: how a session's events reach its front ends.

Subscribers are plain callables run on the event loop, in subscription order; one that raises
is logged and stays subscribed, the others still get the event (a front end's bug never
reaches the feeds). ``kinds`` restricts a subscriber to some event classes (subclasses count).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("liqtui.session")


class Subscription:
    def __init__(self, bus: "Bus", fn: Callable, kinds: tuple[type, ...]):
        self.bus, self.fn, self.kinds = bus, fn, kinds

    def wants(self, ev) -> bool:
        return not self.kinds or isinstance(ev, self.kinds)

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        if self in self.bus.subscribers:
            self.bus.subscribers.remove(self)
            self.bus._wanted.clear()


class Bus:
    def __init__(self):
        self.subscribers: list[Subscription] = []
        self.errors = 0
        self._wanted: dict[type, bool] = {}  # kind → anybody listens (until that changes)

    def subscribe(self, fn: Callable, *kinds: type) -> Subscription:
        """Call ``fn(event)`` for every event published from now on (of ``kinds``, if given)."""
        sub = Subscription(self, fn, kinds)
        self.subscribers.append(sub)
        self._wanted.clear()
        return sub

    def wanted(self, kind: type) -> bool:
        """Whether anybody listens for ``kind`` (so frequent or costly events are made only
        when somebody reads them: a dict lookup per call)."""
        w = self._wanted.get(kind)
        if w is None:
            w = self._wanted[kind] = any(not s.kinds or issubclass(kind, s.kinds)
                                         for s in self.subscribers)
        return w

    def publish(self, ev) -> None:
        for sub in tuple(self.subscribers):
            if sub.wants(ev):
                try:
                    sub.fn(ev)
                except Exception:  # noqa: BLE001 - a subscriber's bug stays its own
                    self.errors += 1
                    log.exception("session subscriber %r failed on %s", sub.fn,
                                  type(ev).__name__)
