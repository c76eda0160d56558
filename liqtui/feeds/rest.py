"""Venue-neutral pieces of the REST clients: errors meant for the user, base-URL checks and the
``Backfill`` of closed steps every venue's ``backfill()`` returns."""

from __future__ import annotations

from urllib.parse import urlsplit


class RestError(Exception):
    """A REST request that cannot succeed. ``str(e)`` is a message for the user."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class UnknownSymbolError(RestError):
    def __init__(self, symbol: str, message: str):
        super().__init__(message, code=-1121)
        self.symbol = symbol


class BannedError(RestError):
    """REST is banned (Binance 418, Bybit 403 cool-off) or rate limited for longer than the
    caller would wait. ``until`` is the wall time (ms) it ends, when known."""

    def __init__(self, message: str, *, status: int | None = None, until: int | None = None):
        super().__init__(message, status=status)
        self.until = until

    @classmethod
    def from_blocked(cls, blocked) -> "BannedError":
        """From a ``ratelimit.Blocked``."""
        return cls(str(blocked), status=418 if blocked.banned else 429, until=blocked.until_ms)


def check_base_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    """A scheme-host-port base URL without a trailing slash, or ValueError naming the value."""
    parts = urlsplit(url.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what} {url!r}: expected {'/'.join(schemes)}://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{what} {url!r}: expected scheme://host[:port] without a path (the client "
            "appends the venue's paths)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{what} {url!r}: bad port") from None
    return f"{parts.scheme}://{parts.netloc}"


class Backfill(dict):
    """The arrays ``build_heatmap`` takes (``BAR_KEYS``), plus what the caller should know:
    ``symbol``, ``interval_ms``, ``start``/``end`` (ms, first bar open .. last bar close) and
    ``warnings`` (for example the open-interest depth clamp)."""

    symbol: str
    interval_ms: int
    start: int
    end: int
    now: int          # the exchange's clock when the backfill started
    warnings: list[str]
