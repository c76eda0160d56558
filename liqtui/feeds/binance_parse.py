"""Binance USDⓈ-M wire data → normalised events. Pure functions, no I/O.

WebSocket: ``parse_frame(text, counters)`` takes one text frame, combined
(``{"stream": …, "data": …}``) or raw, and returns a list of events (usually one). A frame
that is not JSON, is truncated, has a wrong type or an impossible value is skipped and counted
as ``malformed``; valid JSON with an event we do not use (depth, bookTicker, …) is counted as
``unknown``; subscription replies come back as ``Reply``. Nothing here raises on bad input:
a venue's bad frame must never take the feed down. Unknown extra keys are ignored.

REST: ``parse_klines``, ``parse_oi_hist``, ``parse_exchange_info`` turn response bodies
(already decoded JSON) into rows; they raise ``ValueError`` on a body of the wrong shape,
which the REST client turns into a retry or a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import COUNTER_KEYS, Bar, Liquidation, MarkPrice, Reply, Trade, new_counters  # noqa: F401

try:  # orjson decodes these small frames ~2-3× faster than json (benchmarks/bench_ingest.py)
    from orjson import loads
except ImportError:  # pragma: no cover - orjson is a dependency; json is the safety net
    from json import loads

VENUE = "binance"
_INF = float("inf")
_NUM = (str, float, int)  # Binance sends numbers as strings; accept JSON numbers too (not bool)


# ---------------------------------------------------------------------------- field checks
# Written out (no helpers) in the aggTrade path: it runs ~100k times a second.

def _price(x) -> float:
    if x.__class__ not in _NUM:
        raise TypeError
    v = float(x)
    if not 0.0 < v < _INF:  # also rejects NaN
        raise ValueError
    return v


def _qty(x) -> float:
    if x.__class__ not in _NUM:
        raise TypeError
    v = float(x)
    if not 0.0 <= v < _INF:
        raise ValueError
    return v


def _int(x) -> int:
    if x.__class__ is not int:  # bool is not an int here
        raise TypeError
    return x


def _sym(x) -> str:
    if x.__class__ is not str or not x:
        raise TypeError
    return x


# ---------------------------------------------------------------------------- events

def _agg_trade(d: dict) -> Trade:
    p, q, a, t, m, s = d["p"], d["q"], d["a"], d["T"], d["m"], d["s"]
    if (p.__class__ not in _NUM or q.__class__ not in _NUM or a.__class__ is not int
            or t.__class__ is not int or m.__class__ is not bool or s.__class__ is not str):
        raise TypeError
    p = float(p)
    q = float(q)
    if not (0.0 < p < _INF and 0.0 <= q < _INF) or not s:
        raise ValueError
    # m: the buyer is the maker, so the taker (aggressor) sold
    return Trade(VENUE, s, t, a, p, q, not m)


def _kline(d: dict) -> Bar:
    k = d["k"]
    t, end = _int(k["t"]), _int(k["T"])
    closed = k["x"]
    if closed.__class__ is not bool or end < t:
        raise TypeError
    o, h, low, c = _price(k["o"]), _price(k["h"]), _price(k["l"]), _price(k["c"])
    return Bar(VENUE, _sym(k.get("s", d.get("s"))), t, end - t + 1, o, h, low, c,
               _qty(k["v"]), _qty(k["q"]), _qty(k["Q"]), closed)


def _mark_price(d: dict) -> MarkPrice:
    try:  # the index price is optional to us: absent or bad is NaN, not a bad frame
        index = _price(d["i"])
    except (KeyError, TypeError, ValueError):
        index = float("nan")
    return MarkPrice(VENUE, _sym(d["s"]), _int(d["E"]), _price(d["p"]), index)


def _force_order(d: dict) -> Liquidation:
    o = d["o"]
    side = o["S"]
    if side == "SELL":    # a sell order closes a long: a long was wiped
        side = "long"
    elif side == "BUY":
        side = "short"
    else:
        raise ValueError
    q, p = _qty(o["q"]), _qty(o["p"])
    z, ap = _qty(o.get("z", 0.0)), _qty(o.get("ap", 0.0))
    if z > 0.0 and ap > 0.0:
        qty, price = z, ap
    elif q > 0.0 and p > 0.0:
        qty, price = q, p
    else:
        raise ValueError
    return Liquidation(VENUE, _sym(o["s"]), _int(o["T"]), side, price, qty, qty * price)


_PARSERS = {
    "aggTrade": _agg_trade,
    "kline": _kline,
    "markPriceUpdate": _mark_price,
    "forceOrder": _force_order,
}


def _event(d, counters) -> object | None:
    if d.__class__ is not dict:
        counters["malformed"] += 1
        return None
    e = d.get("e")
    f = _PARSERS.get(e) if e.__class__ is str else None
    if f is None:
        counters["unknown"] += 1
        return None
    try:
        ev = f(d)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        counters["malformed"] += 1
        return None
    counters["events"] += 1
    return ev


def parse_frame(frame: str | bytes, counters: dict[str, int] | None = None) -> list:
    """Events (``Trade``, ``Bar``, ``MarkPrice``, ``Liquidation``) or ``Reply`` in one frame.

    ``counters`` (see ``new_counters``) is updated in place; bad input is counted, never raised.
    """
    if counters is None:
        counters = new_counters()
    counters["frames"] += 1
    try:
        msg = loads(frame)
    except Exception:  # any decode failure: bad JSON, bad UTF-8, nesting too deep, not text
        counters["malformed"] += 1
        return []
    if msg.__class__ is not dict:
        counters["malformed"] += 1
        return []
    data = msg.get("data")
    if data is None:
        if "e" not in msg:
            return _reply(msg, counters)
        data = msg  # raw (/ws) form
    if data.__class__ is list:  # the !…@arr streams that really are arrays (e.g. !markPrice@arr)
        out = []
        for d in data:
            ev = _event(d, counters)
            if ev is not None:
                out.append(ev)
        return out
    ev = _event(data, counters)
    return [] if ev is None else [ev]


def _reply(msg: dict, counters) -> list:
    rid = msg.get("id")
    if rid is not None and rid.__class__ is not int:
        counters["malformed"] += 1
        return []
    if "result" in msg and rid is not None:
        counters["replies"] += 1
        return [Reply(rid, msg["result"])]
    code = msg.get("code")
    if code.__class__ is int:  # {"code": 2, "msg": "Invalid request", "id": 7}
        counters["replies"] += 1
        m = msg.get("msg")
        return [Reply(rid, None, code, m if isinstance(m, str) else "")]
    counters["unknown"] += 1
    return []


# ---------------------------------------------------------------------------- REST bodies

@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    base: str
    quote: str
    tick_size: float
    step_size: float
    onboard_ms: int | None
    status: str
    contract_type: str


def parse_exchange_info(body) -> tuple[dict[str, SymbolInfo], int | None]:
    """All symbols of ``/fapi/v1/exchangeInfo`` and the REQUEST_WEIGHT per minute (or None)."""
    if not isinstance(body, dict) or not isinstance(body.get("symbols"), list):
        raise ValueError("exchangeInfo: expected an object with a 'symbols' list")
    out = {}
    for s in body["symbols"]:
        try:
            filters = {f.get("filterType"): f for f in s.get("filters", ()) if isinstance(f, dict)}
            tick = float(filters.get("PRICE_FILTER", {}).get("tickSize", 0) or 0)
            step = float(filters.get("LOT_SIZE", {}).get("stepSize", 0) or 0)
            onboard = s.get("onboardDate")
            info = SymbolInfo(
                symbol=s["symbol"], base=s.get("baseAsset", ""), quote=s.get("quoteAsset", ""),
                tick_size=tick, step_size=step,
                onboard_ms=int(onboard) if isinstance(onboard, (int, str)) and onboard else None,
                status=s.get("status", ""), contract_type=s.get("contractType", ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # one odd symbol must not hide the others
        out[info.symbol] = info
    weight = None
    for r in body.get("rateLimits") or ():
        if (isinstance(r, dict) and r.get("rateLimitType") == "REQUEST_WEIGHT"
                and r.get("interval") == "MINUTE" and r.get("intervalNum") == 1
                and isinstance(r.get("limit"), int)):
            weight = r["limit"]
    return out, weight


def parse_klines(body) -> list[tuple]:
    """Kline rows → (open_ms, o, h, l, c, volume, quote_volume, taker_buy_quote_volume).

    Works for ``/fapi/v1/klines`` (12 fields) and ``/fapi/v1/markPriceKlines`` (volumes "0").
    """
    if not isinstance(body, list):
        raise ValueError("klines: expected a JSON array")
    rows = []
    for r in body:
        if not isinstance(r, list) or len(r) < 11 or not isinstance(r[0], int):
            raise ValueError(f"klines: bad row {str(r)[:80]}")
        rows.append((r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                     float(r[5]), float(r[7]), float(r[10])))
    return rows


def parse_oi_hist(body) -> list[tuple[int, float]]:
    """``/futures/data/openInterestHist`` → (timestamp ms, open interest in base units).
    ``timestamp`` is a string in the docs and a number in live captures: accept both."""
    if not isinstance(body, list):
        raise ValueError("openInterestHist: expected a JSON array")
    rows = []
    for r in body:
        if not isinstance(r, dict):
            raise ValueError(f"openInterestHist: bad row {str(r)[:80]}")
        rows.append((int(r["timestamp"]), float(r["sumOpenInterest"])))
    return rows


def parse_open_interest(body) -> tuple[str, int, float]:
    """``/fapi/v1/openInterest`` → (symbol, time ms, base)."""
    if not isinstance(body, dict):
        raise ValueError("openInterest: expected a JSON object")
    return str(body["symbol"]), int(body["time"]), float(body["openInterest"])
