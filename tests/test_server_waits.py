"""Server-given waits are never trusted as given (issue 12, item 2): a 429's Retry-After, a
418 / 403 ban's end (header or "banned until" body), Bybit's reset timestamp and OKX's
429 / 50011 go through ``ratelimit.server_wait``: capped, garbage → a default (counted), and a
wait beyond ``visible_wait_s`` is a state (LIMITED / BANNED until …), after which polling
resumes. Against the simulated exchange on 127.0.0.1, with the caps shrunk to fractions of a
second so that a Retry-After of three years is over within the test."""

from __future__ import annotations

import math
import time

import pytest

from liqtui.feeds.binance import BinanceLive, BinanceRest
from liqtui.feeds.bybit import BybitLive, BybitRest
from liqtui.feeds.events import FeedState
from liqtui.feeds.okx import OkxLive, OkxRest
from liqtui.feeds.ratelimit import server_wait
from liqtui.sim.market import Market

from helpers import SCALE, Feed, fast, until

YEARS = 99_999_999          # Retry-After: 99999999 (three years)
CAPS = dict(max_limit_wait_s=0.6, max_ban_s=5.0, ban_probe_s=0.6, visible_wait_s=0.1)
RESTS = {"binance": BinanceRest, "bybit": BybitRest, "okx": OkxRest}
LIVES = {"binance": BinanceLive, "bybit": BybitLive, "okx": OkxLive}


@pytest.fixture(scope="module")
def market():
    return Market(("BTCUSDT",), seed=7, history_days=1.0, time_scale=SCALE)


def now_ms() -> float:
    return time.time() * 1000


# ============================================================================ unit


def test_server_wait_caps_and_replaces_garbage_counting_both():
    c = {}
    assert server_wait("2", default=60, cap=600, counters=c) == 2.0 and c == {}
    assert server_wait(None, default=60, cap=600, counters=c) == 60 and c == {}  # none given
    assert server_wait(str(YEARS), default=60, cap=600, counters=c) == 600
    assert c == {"capped_wait": 1}
    for junk in ("abc", "-5", "nan", "inf", "-inf", "", b"\x00", math.nan, -1.0, [1]):
        assert server_wait(junk, default=7, cap=600, counters=c) == 7, junk
    assert c == {"capped_wait": 1, "bad_wait": 10}
    assert server_wait(None, default=900, cap=600) == 600  # a default is capped too


def test_binance_ban_body_far_in_the_future_is_capped():
    """A 418 without Retry-After whose body says "banned until" year 5138."""
    statuses = []
    rest = BinanceRest("http://127.0.0.1:9", on_status=statuses.append, settings=fast(**CAPS))
    t0 = now_ms()
    rest._limited(418, {}, b'{"code":-1003,"msg":"IP banned until 99999999999999."}')
    assert rest.counters["capped_wait"] == 1
    assert statuses[-1].state is FeedState.BANNED
    assert t0 + 4_000 <= statuses[-1].until <= now_ms() + 5_000 + 50
    # and the REST pause is the probe interval, not the ban
    assert rest.limiter.blocked_until_ms() <= now_ms() + 600 + 50
    rest._limited(418, {}, b'{"code":-1003,"msg":"IP banned until 1000000000000."}')  # 2001
    assert rest.counters["bad_wait"] == 1


# ============================================================================ REST


async def served_after(exchange, market, venue, **faults):
    """A server-time request to ``venue``'s sim with ``faults`` set: (client, statuses,
    wall ms when asked, wall ms when served)."""
    sim = await exchange(market, venues=(venue,))
    sim.faults.update(**faults)
    statuses = []
    async with RESTS[venue](sim.rest_url, on_status=statuses.append,
                            settings=fast(max_rest_wait_s=3.0, **CAPS)) as rest:
        t0 = now_ms()
        assert await rest.server_time() > 0
        return rest, statuses, t0, now_ms()


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
async def test_an_absurd_retry_after_on_a_rate_limit_is_capped_and_shown(exchange, market,
                                                                        venue):
    """Binance 429, Bybit retCode 10006, OKX 429 / 50011, each with Retry-After: 99999999:
    waited out to the cap, then served."""
    rest, statuses, t0, _ = await served_after(exchange, market, venue, retry_after_s=YEARS,
                                               http_429_burst=1)
    assert rest.counters["capped_wait"] == 1
    limited = [s for s in statuses if s.state is FeedState.LIMITED]
    assert len(limited) == 1 and t0 + 400 <= limited[0].until <= t0 + 600 + 500
    assert "until" in limited[0].reason
    assert statuses[-1].state is FeedState.LIVE and "over" in statuses[-1].reason


@pytest.mark.parametrize("venue", ["binance", "bybit"])
async def test_a_ban_of_years_is_capped_and_probed(exchange, market, venue):
    """Binance 418, Bybit 403, with Retry-After: 99999999: BANNED until the cap (not 2029),
    and a probe after ``ban_probe_s`` that succeeds ends the ban early."""
    rest, statuses, t0, t1 = await served_after(exchange, market, venue, retry_after_s=YEARS,
                                                http_418_burst=1)
    assert t1 - t0 < 3_000                         # the probe, not the (capped) ban's end
    assert rest.counters["capped_wait"] == 1 and not rest.limiter.banned
    banned = [s for s in statuses if s.state is FeedState.BANNED]
    assert len(banned) == 1 and t0 + 4_000 <= banned[0].until <= t0 + 5_000 + 500
    assert statuses[-1].state is FeedState.LIVE and "ban over" in statuses[-1].reason


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
@pytest.mark.parametrize("junk", ["abc", "-5", "nan"])
async def test_a_garbage_retry_after_is_a_short_default_and_counted(exchange, market, venue,
                                                                   junk):
    sim = await exchange(market, venues=(venue,))
    sim.faults.update(retry_after_s=junk, http_429_burst=1)
    async with RESTS[venue](sim.rest_url, settings=fast(
            default_retry_after_s=0.2, max_rest_wait_s=3.0, **CAPS)) as rest:
        assert await rest.server_time() > 0
        assert rest.counters["bad_wait"] == 1


# ============================================================================ live


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
async def test_a_live_feed_is_limited_not_live_and_polls_again_after_the_cap(exchange, market,
                                                                           venue):
    """The recorder's case: Retry-After: 99999999 on a REST poll (Binance: open interest;
    Bybit and OKX, whose open interest comes over the socket: closed steps). The feed says
    LIMITED until the capped end (not LIVE), then the polls succeed again."""
    polled = "oi_polls" if venue == "binance" else "step_fetches"
    sim = await exchange(market, venues=(venue,))
    async with Feed(LIVES[venue], sim, ("BTCUSDT",), settings=fast(oi_poll_s=0.1, **CAPS)) as f:
        await until(lambda: f.state is FeedState.LIVE and f.live.counters[polled] > 0,
                    what="LIVE with polls")
        t0 = now_ms()
        sim.faults.update(retry_after_s=YEARS, http_429_burst=1)
        await until(lambda: f.state is FeedState.LIMITED, what="LIMITED")
        limited = f.statuses[-1]
        assert limited.until is not None and limited.until <= t0 + 600 + 1_000
        polls = f.live.counters[polled]
        await until(lambda: f.state is FeedState.LIVE, timeout=5, what="LIVE after the cap")
        await until(lambda: f.live.counters[polled] > polls, timeout=5, what="polls again")
