"""Fault injection for the simulated exchange: switchable per run and mutable while it runs.

All faults are off by default. The server reads the fields on every request and every frame, so
a test (or `liqtui sim`) can flip them at any moment: ``sim.faults.silent = True``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields


@dataclass
class Faults:
    # WebSocket
    drop_every_s: float | None = None  # close every WS connection every N wall seconds
    drop_abrupt: bool = True           # drop as a network failure would (TCP abort, no close
                                       # frame); False: a clean close frame 1001
    silent: bool = False               # send no data frames (subscribe replies and pings
                                       # still flow, as on a socket that went quiet upstream)
    malformed_rate: float = 0.0        # share of data frames replaced by broken JSON/shapes
    truncated_rate: float = 0.0        # share of data frames cut short
    extra_fields: bool = False         # add unknown keys to every payload (venues add fields)
    # REST
    slow_ms: float = 0.0               # delay every REST response by this many wall ms
    http_429_burst: int = 0            # the next N REST requests get 429 (decrements)
    http_418_burst: int = 0            # the next N REST requests get 418 (decrements)
    http_5xx_rate: float = 0.0         # share of REST requests answered with a 5xx
    retry_after_s: int | str | None = None  # Retry-After for the injected 429/418 (wall s;
                                       # text is sent as given: "abc", "-5", "nan" for
                                       # hostile-venue tests); None: what the limit logic says

    def retry_after_header(self, default=None) -> dict:
        """The Retry-After header for an injected 429/418 (none if neither is set)."""
        v = self.retry_after_s if self.retry_after_s is not None else default
        if v is None:
            return {}
        return {"Retry-After": v if isinstance(v, str) else str(int(v))}

    def update(self, **changes) -> None:
        """Set several fields at once (for the /sim/faults endpoint and ``--faults``), all or
        none: an unknown name or a value of the wrong kind is a ValueError naming it."""
        kinds = {f.name: str(f.type) for f in fields(self)}
        bad = sorted(set(changes) - set(kinds))
        if bad:
            raise ValueError(f"unknown fault(s): {', '.join(bad)}; known: {', '.join(sorted(kinds))}")
        checked = {name: _checked(name, value, kinds[name]) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict:
        return asdict(self)

    def active(self) -> bool:
        return self != Faults()


def _checked(name: str, value, kind: str):
    """``value`` if it fits the field's annotation ``kind`` ("float | None", "bool", …):
    numbers finite and ≥ 0, rates at most 1; else a ValueError naming the fault and value."""
    allowed = {k.strip() for k in kind.split("|")}
    if value is None and "None" in allowed:
        return None
    if isinstance(value, bool):
        if "bool" in allowed:
            return value
    elif isinstance(value, int) and "int" in allowed and value >= 0:
        return value
    elif isinstance(value, (int, float)) and "float" in allowed and math.isfinite(value) \
            and value >= 0 and (not name.endswith("_rate") or value <= 1):
        return float(value)
    elif isinstance(value, str) and "str" in allowed:
        return value
    what = ("true or false" if "bool" in allowed else
            "a number from 0 to 1" if name.endswith("_rate") else
            "a whole number ≥ 0" if "int" in allowed and "float" not in allowed else
            "a number ≥ 0") + (", or null" if "None" in allowed else "") + \
        (", or text" if "str" in allowed else "")
    raise ValueError(f"fault {name}={value!r} is not accepted: expected {what}")


class DropClock:
    """When the ``drop_every_s`` fault's next cut of every socket is due (wall time), per
    protocol server: the period counts from the last cut, or from when the fault was set."""

    def __init__(self):
        self._last = time.monotonic()

    def restart(self) -> None:
        self._last = time.monotonic()

    def due(self, every_s: float, wall: float) -> bool:
        if not every_s:
            self._last = wall
            return False
        if wall - self._last >= every_s:
            self._last = wall
            return True
        return False
