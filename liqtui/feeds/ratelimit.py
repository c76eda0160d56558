"""Binance REST request-weight limiter (limits are per IP, so share one per host).

* Weight: each response's ``X-MBX-USED-WEIGHT-1M`` is the IP's weight in the current minute.
  We keep that number (plus what we have sent since) and wait for the next minute when a
  request would take it past ``limit − buffer``. The buffer leaves room for other programs on
  the same IP and for our own requests in flight.
* ``/futures/data/*`` costs no weight but has its own 1000 requests / 5 min: a sliding window.
* 429: stop *all* REST until ``Retry-After`` has passed (``throttle``).
* 418: the IP is banned; stop all REST until the ban ends (``ban``).

``acquire`` raises ``Blocked`` instead of waiting longer than the caller allows, so a
caller that must not hang (an open-interest poll) can skip its turn.

Every wait a server gives (Retry-After, a ban's end in a body, a reset timestamp) goes
through ``server_wait``: garbage (non-numeric, NaN, infinite, negative) becomes the caller's
default and a wait beyond the cap is cut to the cap, both counted. A ban's REST pause is
further cut to ``probe_s`` (``ban``): the client asks again then, and a success ends the ban,
so a wrong end time costs one probe per ``probe_s``, never the rest of the run.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from ..units import utc_seconds as _utc

OI_HIST_WINDOW_S = 300.0


def server_wait(value, *, default: float, cap: float, counters: dict | None = None) -> float:
    """Seconds to wait for a server-given ``value`` (seconds: a number or header text; None when
    the server gave none). Garbage → ``default`` (counted as ``bad_wait``); beyond ``cap`` →
    ``cap`` (counted as ``capped_wait``). Never negative, never more than ``cap``."""
    if value is None:
        x = default
    else:
        try:
            x = float(value)
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x) or x < 0:
            if counters is not None:
                counters["bad_wait"] = counters.get("bad_wait", 0) + 1
            x = default
    if x > cap:
        if value is not None and counters is not None:
            counters["capped_wait"] = counters.get("capped_wait", 0) + 1
        x = cap
    return max(0.0, x)


class Blocked(Exception):
    """REST is blocked (429 back-off or 418 ban) for longer than the caller will wait."""

    def __init__(self, until_wall_ms: int, banned: bool):
        self.until_ms = until_wall_ms
        self.banned = banned
        what = "banned (HTTP 418)" if banned else "rate limited (HTTP 429)"
        super().__init__(f"Binance REST {what} until {_utc(until_wall_ms)}")


class WeightLimiter:
    def __init__(self, limit: int = 2400, buffer: int = 100, *, oi_hist_limit: int = 1000,
                 oi_hist_buffer: int = 50):
        self.limit = limit
        self.buffer = buffer
        self.oi_hist_limit = oi_hist_limit
        self.oi_hist_buffer = oi_hist_buffer
        self.used = 0              # weight used in the current minute, as far as we know
        self._minute = self._now_minute()
        self._paused_until = 0.0   # monotonic: 429 Retry-After or 418 ban, whichever is later
        self._banned_until = 0.0   # monotonic end of a 418 ban
        self._oi_hist: deque[float] = deque()
        self.waited_s = 0.0        # total time spent waiting (for reports and tests)

    # ---------------------------------------------------------------- state

    @staticmethod
    def _now_minute() -> int:
        return int(time.time() // 60)

    @property
    def banned(self) -> bool:
        return time.monotonic() < self._banned_until

    @property
    def blocked(self) -> bool:
        return time.monotonic() < self._paused_until

    def blocked_until_ms(self) -> int:
        """Wall time (ms) when REST may be used again; ≤ now when it may be used now."""
        return int((time.time() + self._paused_until - time.monotonic()) * 1000)

    # ---------------------------------------------------------------- inputs

    def observe(self, headers) -> None:
        """Take the server's count from a response's headers."""
        v = headers.get("X-MBX-USED-WEIGHT-1M") or headers.get("x-mbx-used-weight-1m")
        if v is None:
            return
        try:
            used = int(v)
        except ValueError:
            return
        self._minute = self._now_minute()
        self.used = used

    def throttle(self, retry_after_s: float) -> None:
        """HTTP 429: no REST at all until Retry-After has passed."""
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, retry_after_s))

    def ban(self, seconds: float, probe_s: float = math.inf) -> int:
        """HTTP 418: banned for ``seconds``; no REST for ``min(seconds, probe_s)``, then one
        probe (``unban`` on its success). Returns the ban's end as wall ms."""
        now = time.monotonic()
        self._banned_until = max(self._banned_until, now + max(0.0, seconds))
        self._paused_until = max(self._paused_until, now + max(0.0, min(seconds, probe_s)))
        return int((time.time() + self._banned_until - now) * 1000)

    def unban(self) -> None:
        """A request succeeded: whatever the server said, the ban is over."""
        self._banned_until = min(self._banned_until, time.monotonic())

    # ---------------------------------------------------------------- the gate

    async def acquire(self, weight: int, *, oi_hist: bool = False,
                      max_wait: float = math.inf) -> None:
        """Wait until a request of ``weight`` may be sent (then count it as sent)."""
        while True:
            now = time.monotonic()
            wait = self._paused_until - now
            if wait <= 0:
                minute = self._now_minute()
                if minute != self._minute:  # a new minute: the server's count starts again
                    self._minute, self.used = minute, 0
                if self.used + weight > self.limit - self.buffer and self.used > 0:
                    wait = (minute + 1) * 60 - time.time() + 0.05
                elif oi_hist:
                    q = self._oi_hist
                    while q and q[0] <= now - OI_HIST_WINDOW_S:
                        q.popleft()
                    if len(q) >= self.oi_hist_limit - self.oi_hist_buffer:
                        wait = q[0] + OI_HIST_WINDOW_S - now + 0.01
            if wait <= 0:
                break
            if wait > max_wait:
                raise Blocked(int((time.time() + wait) * 1000), self.banned)
            self.waited_s += wait
            await asyncio.sleep(wait)
        self.used += weight
        if oi_hist:
            self._oi_hist.append(time.monotonic())
