"""Venue-neutral pieces of the REST clients: errors meant for the user, base-URL checks, the
``Backfill`` of closed steps every venue's ``backfill()`` returns, and ``RestClient``: the
session, status callback and backfill skeleton (span on the step grid, depth clamp, progress,
the join of bars, mark bars and open interest) that each venue's client fills with its own
requests."""

from __future__ import annotations

import asyncio
import difflib
import time

import aiohttp
import numpy as np

from .contract import VenueRest
from .events import FeedState, FeedStatus
from .settings import FeedSettings
from .venues import check_base_url
from ..units import utc_seconds as utc


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


class Backfill(dict):
    """The arrays ``build_heatmap`` takes (``BAR_KEYS``), plus what the caller should know:
    ``symbol``, ``interval_ms``, ``start``/``end`` (ms, first bar open .. last bar close) and
    ``warnings`` (for example the open-interest depth clamp)."""

    symbol: str
    interval_ms: int
    start: int
    end: int
    now: int          # the exchange's clock when the backfill started
    requested: int    # the first bar asked for (after any depth clamp)
    warnings: list[str]


def now_ms() -> int:
    return int(time.time() * 1000)


def find_symbol(symbol: str, tradable: dict, listed: dict, *, venue: str, market: str,
                trading: str):
    """``tradable[symbol]`` (any case), or ``UnknownSymbolError`` saying why: listed but not
    ``trading`` (its status) or not a perpetual, or unknown with a did-you-mean."""
    sym = symbol.strip().upper()
    if sym in tradable:
        return tradable[sym]
    other = listed.get(sym)
    if other is not None:
        why = (f"not trading (status {other.status})" if other.status != trading
               else f"a {other.contract_type or 'non-perpetual'} contract, not a perpetual")
        raise UnknownSymbolError(sym, f"symbol {sym!r} on {venue} {market} is {why}")
    near = difflib.get_close_matches(sym, list(tradable), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise UnknownSymbolError(
        sym, f"unknown symbol {sym!r}: not a trading {market} perpetual on {venue}{hint}")


def join_steps(kl, mk, oi, iv, period) -> dict[str, np.ndarray]:
    """Bars as the time axis (sorted, unique), mark extremes and open interest joined on.

    ``kl``/``mk``: rows ``(open_ms, o, h, l, c, volume, quote_volume, taker_buy_quote)``;
    ``oi``: ``(T, base)``, a row stamped T being the open interest at the instant T, i.e. at
    the close of the bar opening at T − ``iv``; NaN where a venue has nothing."""
    kl = sorted({r[0]: r for r in kl}.values())
    a = np.array(kl, dtype=np.float64).reshape(-1, 8)
    t = a[:, 0].astype(np.int64)
    out = {"time": t}
    for j, k in enumerate(("open", "high", "low", "close", "volume", "quote_volume",
                           "taker_buy_quote_volume"), 1):
        out[k] = np.ascontiguousarray(a[:, j])
    n = len(t)
    mh = np.full(n, np.nan)
    ml = np.full(n, np.nan)
    if mk:
        m = np.array(sorted({r[0]: r for r in mk}.values()), dtype=np.float64).reshape(-1, 8)
        mt = m[:, 0].astype(np.int64)
        idx = np.searchsorted(mt, t)
        ok = idx < len(mt)
        ok[ok] = mt[idx[ok]] == t[ok]
        mh[ok], ml[ok] = m[idx[ok], 2], m[idx[ok], 3]
    out["mark_high"], out["mark_low"] = mh, ml
    oiv = np.full(n, np.nan)
    if oi:
        o = sorted(dict(oi).items())
        ot = np.array([r[0] for r in o], dtype=np.int64)
        ov = np.array([r[1] for r in o], dtype=np.float64)
        close = t + iv
        j = np.searchsorted(ot, close, side="right") - 1  # the latest row at or before the close
        ok = j >= 0
        ok[ok] = close[ok] - ot[j[ok]] < period           # and it is of that period
        oiv[ok] = ov[j[ok]]
    out["open_interest"] = oiv
    return out


class RestClient(VenueRest):
    """What every venue's REST client shares: the aiohttp session (its own unless one is
    given; HTTP(S) proxies from the environment honoured), ``on_status`` reports that never
    break a request, and ``_steps``, the skeleton of ``backfill()``. The rest of
    ``contract.VenueRest`` is the venue's."""

    VENUE = ""     # FeedStatus.venue
    LABEL = ""     # "Binance": messages

    def __init__(self, base_url: str, *, session=None, on_status=None,
                 settings: FeedSettings | None = None):
        self.base_url = check_base_url(base_url, ("http", "https"), f"{self.LABEL} REST URL")
        self.settings = settings or FeedSettings()
        self.on_status = on_status
        self._banned = False           # BANNED / LIMITED reported and no success since
        self._activity: FeedState | None = None
        self._session = session
        self._own_session = session is None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=True)  # honour HTTP(S)_PROXY
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await close_session(self._session)
            self._session = None

    def _emit(self, state: FeedState, reason: str = "", until: int | None = None) -> None:
        if self.on_status is not None:
            try:
                self.on_status(FeedStatus(self.VENUE, state, now_ms(), reason, until))
            except Exception:  # a broken callback must not break REST
                pass

    def _rest_recovered(self) -> None:
        """A request succeeded after a reported BANNED / LIMITED (``self._banned``): whatever
        end time the server gave, it is over (a ban's probe succeeded)."""
        was, self._banned = self._banned, False
        self.limiter.unban()
        over = "REST ban over" if was is FeedState.BANNED else "REST rate limit over"
        self._emit(self._activity or FeedState.LIVE, over)

    # the venues' request loops share one attempt and one failure tail; what an answer
    # means (bans, rate limits, error envelopes) is each venue's own
    async def _attempt(self, url: str, params) -> tuple:
        """One GET: ``(status, headers, body, problem)``; ``problem`` says why it is worth
        asking again (no answer: status None; HTTP 5xx or 408), else None. Counted."""
        s = self.settings
        try:
            async with self._get_session().get(
                    url, params=params, timeout=aiohttp.ClientTimeout(total=s.rest_timeout_s)) as r:
                status, headers, body = r.status, r.headers, await r.read()
        except asyncio.TimeoutError:
            self.counters["timeouts"] += 1
            return None, None, b"", f"no answer within {s.rest_timeout_s:g} s"
        except aiohttp.ClientError as e:
            return None, None, b"", f"{type(e).__name__}: {e}"
        if status >= 500 or status == 408:
            self.counters["http_5xx"] += 1
            return status, headers, body, f"HTTP {status}"
        return status, headers, body, None

    async def _failed(self, path: str, failures: int, problem: str, backoff) -> None:
        """After the ``failures``-th failed attempt: RestError once the retries are spent,
        else the backoff's wait."""
        if failures > self.settings.rest_retries:
            self.counters["errors"] += 1
            raise RestError(f"{self.LABEL} REST {path} failed {failures} times ({problem})")
        self.counters["retries"] += 1
        await asyncio.sleep(backoff.next())

    async def _steps(self, sym: str, start_ms, end_ms, lookback_ms, iv: int, period: int,
                     fetch, progress=None, oi_depth=None) -> Backfill:
        """Closed bars of ``iv`` ms opening at or after ``start_ms`` (or ``lookback_ms``
        before the end) and closing at or before ``end_ms`` (default: the venue's now).

        ``fetch(first, last, now, count)`` returns the venue's rows ``(klines, mark klines,
        open interest)`` for bars opening in [first, last] (see ``join_steps``), calling
        ``count(n)`` per page (n in bars). ``oi_depth``: ``(now, period) -> (oldest ms,
        "what the venue keeps")``: a start before the venue's open-interest depth is moved there, and the
        returned Backfill's ``warnings`` say so. Its ``requested`` is the first bar asked."""
        warns: list[str] = []
        now = await self.server_time()
        end = now if end_ms is None else min(end_ms, now)
        if start_ms is None:
            if lookback_ms is None:
                raise ValueError("backfill needs start_ms or lookback_ms")
            start_ms = end - lookback_ms
        first = -(-start_ms // iv) * iv          # first bar opens on the grid at/after start
        last = end // iv * iv - iv               # last bar closes at/before end
        if oi_depth is not None:
            depth, what = oi_depth(now, period)
            if first + iv < depth:
                clamped = -(-(depth - iv) // iv) * iv
                warns.append(f"{self.LABEL} keeps {what}: start moved from {utc(first)} to "
                             f"{utc(clamped)}")
                first = clamped
        self._emit(FeedState.BACKFILLING, f"{sym} {utc(first)} → {utc(last + iv)}")
        total = 3 * max(0, (last - first) // iv + 1)
        done = 0

        def count(n):
            nonlocal done
            done += n
            if progress is not None:
                progress(min(done, total), total)

        kl, mk, oi = ([], [], []) if last < first else await fetch(first, last, now, count)
        out = join_steps(kl, mk, oi, iv, period)
        bf = Backfill(out)
        bf.symbol, bf.interval_ms, bf.warnings, bf.now = sym, iv, warns, now
        bf.start = int(out["time"][0]) if len(out["time"]) else first
        bf.end = int(out["time"][-1]) + iv if len(out["time"]) else first
        bf.requested = first
        return bf


CLOSE_BOUND_S = 3.0  # the longest any close on the stop path waits for a peer


async def close_session(session: aiohttp.ClientSession, timeout: float = CLOSE_BOUND_S) -> None:
    """Close ``session`` within ``timeout`` seconds: its connections are closed whether or not
    the peers ever read what is left to send (stopping never waits on a server)."""
    try:
        await asyncio.wait_for(session.close(), timeout)
    except Exception:  # TimeoutError included: the connections are gone or going, move on
        pass
