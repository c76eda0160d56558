"""Units and how liqtui writes them: time spans in milliseconds (a minute, an hour, a day, the
5-minute step the model, the feeds and the store work in), USD amounts, UTC times and
durations.

One place, so a step or a day is never defined twice. Standard library only: ``--help`` and
``liqtui.model`` import it.
"""

from __future__ import annotations

import re
import time

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
# the spans a view or a lookback may take: the app's display ranges, levels' and watch's
UI_RANGES = {"12h": 12 * HOUR, "24h": 24 * HOUR, "3d": 3 * DAY, "7d": 7 * DAY, "30d": 30 * DAY}
STEP_MS = 5 * MINUTE  # one closed step: the bar the model, the live feeds and the store use


def and_list(words) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = list(words)
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def usd(x: float) -> str:
    """$950, $123.45K, $12.35M, $1.23B."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"${x / div:,.2f}{unit}"
    return f"${x:,.0f}"


def utc(ms: int, seconds: bool = False) -> str:
    """'2026-11-30 10:05 UTC' (with ``seconds``: '2026-11-30 10:05:07 UTC')."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC",
                         time.gmtime(ms / 1000))


def utc_seconds(ms: int) -> str:
    """'2026-11-30 10:05:07 UTC'."""
    return utc(ms, seconds=True)


def hms(ms: int) -> str:
    """The UTC time of day, '10:05:07': the start of a plain status line."""
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}


def parse_duration(text: str) -> int:
    """'12h', '30m', '2d', '1h30m', '90s' -> milliseconds. Raises ValueError."""
    s = str(text).strip().lower().replace(" ", "")
    if not s or _DURATION_RE.sub("", s):
        raise ValueError(f"not a duration: {text!r}")
    ms = sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_RE.findall(s))
    if ms <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    return int(round(ms))


def format_duration(ms) -> str:
    """A compact duration, two largest units: 45s, 5m, 2h 5m, 3d 4h."""
    s = int(ms) // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v]
    return " ".join(parts[:2]) or f"{int(ms)}ms"
