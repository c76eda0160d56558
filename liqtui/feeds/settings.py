"""Feed timers and limits. Every timer the feeds use is here, so tests, the demo's fast clock
and users can change it; nothing in the feed code waits on a literal number of seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..units import DAY as DAY_MS


@dataclass(frozen=True)
class FeedSettings:
    # WebSocket
    stale_timeout_s: float = 30.0          # no data frame for this long: the socket is STALE
    backoff_base_s: float = 1.0            # first reconnect delay (then doubling, with jitter)
    backoff_cap_s: float = 30.0            # reconnect delay never exceeds this
    max_connection_age_s: float = 23 * 3600 + 50 * 60  # reconnect before Binance's 24 h cut
    rotation_overlap_s: float = 2.0        # old and new socket both read during a rotation
    connect_timeout_s: float = 10.0        # WebSocket handshake
    close_timeout_s: float = 2.0           # wait for the peer's close frame, then just drop
    max_streams_per_connection: int = 200  # the Binance limit we keep to (venue allows 1024)
    max_future_s: float = 300.0            # an event stamped this far past the newest one the
                                           # socket accepted (and the local clock): implausible
    max_age_s: float = 3600.0              # ... or this far before it (OKX liquidations come
                                           # minutes late): dropped and counted, never applied
    # REST
    oi_poll_s: float = 5.0                 # open-interest poll period (wall seconds)
    step_settle_s: float = 1.0             # after a step closes, wait before asking REST for it
    step_retry_s: float = 15.0             # ask again for steps whose open interest is missing
    oi_wait_steps: int = 3                 # deliver a step without open interest after this
    rest_timeout_s: float = 10.0           # one REST request, total
    rest_retries: int = 5                  # 5xx / timeouts / connection errors, per request
    rest_backoff_base_s: float = 0.5
    rest_backoff_cap_s: float = 8.0
    max_rest_wait_s: float = 900.0         # longest a REST call waits out a 429/418 before failing
    default_ban_s: float = 120.0           # a 418 without Retry-After or "banned until": 2 min
    default_retry_after_s: float = 60.0    # a 429 without Retry-After: wait out the minute
    # server-given waits (ratelimit.server_wait): never trusted beyond these
    max_limit_wait_s: float = 600.0        # a 429 / retCode 10006 / 50011: at most 10 min
    max_ban_s: float = 3 * 86400.0         # a 418 / 403 ban: Binance's longest is 3 days
    ban_probe_s: float = 600.0             # during a ban, one request this often ends it early
    visible_wait_s: float = 5.0            # a longer REST wait is a state: LIMITED / BANNED until
    weight_limit: int = 2400               # REQUEST_WEIGHT per minute (exchangeInfo may lower it)
    weight_buffer: int = 100               # stay this far below the limit
    oi_hist_limit: int = 1000              # openInterestHist: requests per 5 minutes per IP
    oi_hist_buffer: int = 50
    oi_history_days: float = 29.9          # depth of openInterestHist; older starts get HTTP 400

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"FeedSettings.{f.name} = {v!r}: expected a finite number")
            if v < 0 or (v == 0 and f.name not in ("weight_buffer", "oi_hist_buffer", "rest_retries")):
                raise ValueError(f"FeedSettings.{f.name} = {v!r}: expected a positive number")
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("FeedSettings.backoff_cap_s must be ≥ backoff_base_s")
        if self.weight_buffer >= self.weight_limit:
            raise ValueError("FeedSettings.weight_buffer must be below weight_limit")
        if not 1 <= self.max_streams_per_connection <= 1024:
            raise ValueError("FeedSettings.max_streams_per_connection must be in 1..1024")

    @property
    def oi_history_ms(self) -> int:
        return int(self.oi_history_days * DAY_MS)
