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


# C0 controls, DEL, C1 controls, and the bidi embeddings/overrides/isolates (U+202A–U+202E,
# U+2066–U+2069) that reorder what follows on a terminal line
_UNPRINTABLE = [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                *range(0x2066, 0x206A)]
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNPRINTABLE}
_KEEP_LINES = {k: v for k, v in _ESCAPES.items() if k not in (0x0A, 0x09)}


def printable(text, lines: bool = True) -> str:
    """``text`` safe to put on a terminal or in a log: every control character a venue, a file
    or an argument may carry (C0 such as ESC, BEL, CR; DEL; C1 U+0080–U+009F; the bidi
    overrides and isolates) becomes its visible Python escape, ``\\x1b``, ``\\x07``,
    ``\\u202e``. Newline and tab stay when ``lines`` (a multi-line output); with
    ``lines=False`` they are escaped too. Plain text is returned unchanged, and so is text
    already made printable (a backslash is not touched)."""
    text = str(text)
    return text.translate(_KEEP_LINES if lines else _ESCAPES)


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
