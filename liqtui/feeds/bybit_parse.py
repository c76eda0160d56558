"""Bybit v5 linear wire data → normalised events. Pure functions (and one small merge state,
``TickerBook``), no I/O.

WebSocket: ``parse_frame(frame, counters, book)`` takes one message of
``/v5/public/linear`` and returns a list of events, never raising: a frame that is not JSON,
is truncated or has a wrong type is counted as ``malformed``; valid JSON of a topic we do not
use (orderbook, …) as ``unknown``; control messages come back as ``events.Reply`` (never
market data): an ack is ``Reply(req_id, op, code, ret_msg)`` with ``code`` None on success and
"error" on ``success: false`` (``ret_msg`` names the topic), a pong ``Reply(req_id, "pong")``,
a service-upgrade notice ``Reply(None, "notice", "64008", msg)``. Block trades are counted
as ``block_trades``. Unknown extra keys are ignored. Venue quirks:

* ``publicTrade``: ``data`` is an array (up to 1024 trades), ``S`` is the *taker* side, ``i`` a
  UUID (kept as the ``Trade.trade_id``, a str here: dedupe by a recent set, not by order).
  Block trades (``BT: true``) are negotiated off the book: their ``S`` says nothing about
  market aggression, so they are dropped (counted as ``block_trades``) to keep the taker
  share that trades give the model honest; the closed 1-minute kline restores their volume.
* ``kline.1.SYMBOL``: ``data`` is an array that may hold the just-closed candle
  (``confirm: true``) *and* the new one; candles carry no taker-buy volume (NaN).
* ``tickers``: a snapshot, then deltas carrying only the changed fields; ``TickerBook`` merges
  them per symbol and yields ``MarkPrice`` (when the mark changes) and ``OpenInterest`` (when
  open interest changes): ``singleOpenInterest`` where the venue sends it (since 2026-06-11
  ``openInterest`` counts both sides, twice the single side), else ``openInterest``; base units.
* ``allLiquidation``: ``data`` is an array of *all* liquidations of a 500 ms window; ``S`` is
  the *position* side (``Buy``: a long was wiped, the opposite of Binance's order side).

REST: ``result(body, what)`` unwraps the ``retCode``/``retMsg`` envelope (a non-zero retCode is
an error even with HTTP 200: ``RetCodeError``); ``parse_klines``, ``parse_open_interest``,
``parse_tickers``, ``parse_instruments`` turn a ``result`` into rows, raising ``ValueError``
on a wrong shape. Kline and open-interest lists arrive newest first: rows come back oldest
first.
"""

from __future__ import annotations

from .binance_parse import _INF, _NUM, SymbolInfo, _price, _qty, _sym, loads
from .events import Bar, Liquidation, MarkPrice, OpenInterest, Reply, Trade, new_counters

VENUE = "bybit"
_NAN = float("nan")
# kline interval names of v5 → ms (D/W/M are calendar units we do not use)
KLINE_INTERVALS = {"1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000,
                   "60": 3_600_000, "120": 7_200_000, "240": 14_400_000, "360": 21_600_000,
                   "720": 43_200_000, "D": 86_400_000}
OI_INTERVALS = {"5min": 300_000, "15min": 900_000, "30min": 1_800_000, "1h": 3_600_000,
                "4h": 14_400_000, "1d": 86_400_000}

RATE_LIMITED = 10006  # retCode "Too many visits!" (per-UID limit)
PARAMS_ERROR = 10001  # retCode for bad parameters, an unknown symbol among them


# ---------------------------------------------------------------------------- the ticker book

class TickerBook:
    """Merged ``tickers`` state per symbol (deltas carry only the fields that changed)."""

    def __init__(self):
        self.state: dict[str, dict] = {}

    def clear(self) -> None:
        """Forget everything (a new connection starts with fresh snapshots)."""
        self.state.clear()

    def apply(self, msg: dict) -> list:
        data = msg["data"]
        kind = msg.get("type")
        if data.__class__ is not dict or kind not in ("snapshot", "delta"):
            raise TypeError
        sym = _sym(data["symbol"])
        t = msg["ts"]
        if t.__class__ is not int:
            raise TypeError
        if kind == "snapshot":
            st = self.state[sym] = dict(data)
        else:
            st = self.state.setdefault(sym, {})
            st.update(data)
        out = []
        if "markPrice" in data:
            try:
                index = _price(st["indexPrice"])
            except (KeyError, TypeError, ValueError):
                index = _NAN
            out.append(MarkPrice(VENUE, sym, t, _price(data["markPrice"]), index))
        if "singleOpenInterest" in data or "openInterest" in data:
            single = st.get("singleOpenInterest")
            # "" or absent before 2026-06-11: the older field was single-sided then
            base = _qty(single if single not in (None, "") else st["openInterest"])
            out.append(OpenInterest(VENUE, sym, t, base))
        return out


# ---------------------------------------------------------------------------- topics

def _trades(msg: dict, counters, book) -> list:
    data = msg["data"]
    if data.__class__ is not list:
        raise TypeError
    out = []
    for d in data:
        try:
            p, v, t, s, side, i = d["p"], d["v"], d["T"], d["s"], d["S"], d["i"]
            if (p.__class__ not in _NUM or v.__class__ not in _NUM or t.__class__ is not int
                    or s.__class__ is not str or i.__class__ is not str):
                raise TypeError
            p = float(p)
            v = float(v)
            if not (0.0 < p < _INF and 0.0 <= v < _INF) or not s or not i:
                raise ValueError
            if side == "Buy":
                buy = True
            elif side == "Sell":
                buy = False
            else:
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            counters["malformed"] += 1
            continue
        if d.get("BT") is True:
            counters["block_trades"] = counters.get("block_trades", 0) + 1
            continue
        out.append(Trade(VENUE, s, t, i, p, v, buy))
    return out


def _klines(msg: dict, counters, book) -> list:
    data = msg["data"]
    topic = msg["topic"]
    if data.__class__ is not list:
        raise TypeError
    sym = _sym(topic[topic.rindex(".") + 1:])
    out = []
    for d in data:
        try:
            start, end, closed = d["start"], d["end"], d["confirm"]
            if start.__class__ is not int or end.__class__ is not int or end <= start \
                    or closed.__class__ is not bool:
                raise TypeError
            iv = KLINE_INTERVALS[d["interval"]]
            out.append(Bar(VENUE, sym, start, iv, _price(d["open"]), _price(d["high"]),
                           _price(d["low"]), _price(d["close"]), _qty(d["volume"]),
                           _qty(d["turnover"]), _NAN, closed))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            counters["malformed"] += 1
    return out


def _liq(sym, t, side, p, v) -> Liquidation:
    if t.__class__ is not int:
        raise TypeError
    if side == "Buy":      # the position side: a long was liquidated
        side = "long"
    elif side == "Sell":
        side = "short"
    else:
        raise ValueError
    qty, price = _qty(v), _price(p)
    # ``price`` is the bankruptcy price the venue reports, not a fill: it lies beyond the
    # traded price (below it for longs); kept as given, placement may snap it to trades
    return Liquidation(VENUE, _sym(sym), t, side, price, qty, qty * price)


def _all_liquidations(msg: dict, counters, book) -> list:
    data = msg["data"]
    if data.__class__ is not list:
        raise TypeError
    out = []
    for d in data:
        try:
            out.append(_liq(d["s"], d["T"], d["S"], d["p"], d["v"]))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            counters["malformed"] += 1
    return out


def _old_liquidation(msg: dict, counters, book) -> list:
    """The deprecated ``liquidation.SYMBOL`` (one object, at most one a second; recordings)."""
    d = msg["data"]
    return [_liq(d["symbol"], d["updatedTime"], d["side"], d["price"], d["size"])]


def _tickers(msg: dict, counters, book) -> list:
    return (book if book is not None else TickerBook()).apply(msg)


_TOPICS = {
    "publicTrade": _trades,
    "tickers": _tickers,
    "kline": _klines,
    "allLiquidation": _all_liquidations,
    "liquidation": _old_liquidation,
}


_BY_TOPIC: dict[str, object] = {}  # full topic → handler (a few per symbol), saves a split


def parse_frame(frame: str | bytes, counters: dict[str, int] | None = None,
                book: TickerBook | None = None, on_reply=None) -> list:
    """Events (``Trade``, ``Bar``, ``MarkPrice``, ``OpenInterest``, ``Liquidation``) or a
    ``Reply`` in one message. ``counters`` (``new_counters``) is updated in place;
    ``book`` holds the merged tickers (a new one per call if None: deltas then yield only what
    they carry); ``on_reply(reply)`` is called for a control message. Bad input is counted,
    never raised."""
    if counters is None:
        counters = new_counters()
    counters["frames"] += 1
    try:
        msg = loads(frame)
    except Exception:  # bad JSON, bad UTF-8, not text
        counters["malformed"] += 1
        return []
    if msg.__class__ is not dict:
        counters["malformed"] += 1
        return []
    topic = msg.get("topic")
    if topic is None:
        out = _control(msg, counters)
        if out and on_reply is not None:
            on_reply(out[0])
        return out
    if topic.__class__ is not str:
        counters["malformed"] += 1
        return []
    f = _BY_TOPIC.get(topic)
    if f is None:
        f = _TOPICS.get(topic.partition(".")[0])
        if f is None:
            counters["unknown"] += 1
            return []
        if len(_BY_TOPIC) < 10_000:
            _BY_TOPIC[topic] = f
    try:
        events = f(msg, counters, book)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        counters["malformed"] += 1
        return []
    counters["events"] += len(events)
    return events


def _control(msg: dict, counters) -> list:
    op = msg.get("op")
    if op.__class__ is str:
        success = msg.get("success")
        ret_msg = msg.get("ret_msg", "")
        req_id = msg.get("req_id", "")
        if op == "pong" or (op == "ping" and ret_msg == "pong"):
            op, success = "pong", True
        if success.__class__ is not bool or ret_msg.__class__ is not str \
                or req_id.__class__ is not str:
            counters["malformed"] += 1
            return []
        counters["replies"] += 1
        return [Reply(req_id, op, None if success else "error", ret_msg)]
    if msg.get("event") == "notice":  # "64008": closed soon for a service upgrade
        code, m = msg.get("code"), msg.get("msg", "")
        counters["replies"] += 1
        return [Reply(None, "notice", str(code), m if m.__class__ is str else "")]
    counters["unknown"] += 1
    return []


# ---------------------------------------------------------------------------- REST bodies

class RetCodeError(ValueError):
    """A body whose ``retCode`` is not 0 (the venue answers most errors with HTTP 200)."""

    def __init__(self, code: int, msg: str):
        super().__init__(f"retCode {code}: {msg}")
        self.code, self.msg = code, msg


def result(body, what: str) -> dict:
    """The ``result`` of a v5 envelope, or ``RetCodeError`` / ``ValueError``."""
    if not isinstance(body, dict) or "retCode" not in body:
        raise ValueError(f"{what}: expected a v5 envelope with retCode")
    code = body["retCode"]
    if code != 0:
        raise RetCodeError(code if isinstance(code, int) else -1, str(body.get("retMsg", "")))
    res = body.get("result")
    if not isinstance(res, dict):
        raise ValueError(f"{what}: no 'result' object")
    return res


def _list(res: dict, what: str) -> list:
    rows = res.get("list")
    if not isinstance(rows, list):
        raise ValueError(f"{what}: no 'list' in the result")
    return rows


def parse_klines(res: dict) -> list[tuple]:
    """``/v5/market/kline`` (or mark-price-kline) result → oldest-first rows
    (start_ms, o, h, l, c, volume, turnover); mark-price rows have no volumes (0.0)."""
    rows = []
    for r in _list(res, "kline"):
        if not isinstance(r, list) or len(r) < 5:
            raise ValueError(f"kline: bad row {str(r)[:80]}")
        vol = float(r[5]) if len(r) > 6 else 0.0
        quote = float(r[6]) if len(r) > 6 else 0.0
        rows.append((int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), vol, quote))
    rows.reverse()  # newest first on the wire
    return rows


def parse_open_interest(res: dict) -> tuple[list[tuple[int, float]], str]:
    """``/v5/market/open-interest`` result → (oldest-first (timestamp ms, base), next cursor).
    Base is ``singleOpenInterest`` where present (one side), else ``openInterest``."""
    rows = []
    for r in _list(res, "open-interest"):
        if not isinstance(r, dict):
            raise ValueError(f"open-interest: bad row {str(r)[:80]}")
        single = r.get("singleOpenInterest")
        rows.append((int(r["timestamp"]),
                     float(single if single not in (None, "") else r["openInterest"])))
    rows.reverse()
    cursor = res.get("nextPageCursor") or ""
    return rows, cursor if isinstance(cursor, str) else ""


def parse_tickers(res: dict) -> dict[str, tuple[float, float, float]]:
    """``/v5/market/tickers`` result → {symbol: (mark, index, open interest base)}."""
    out = {}
    for r in _list(res, "tickers"):
        single = r.get("singleOpenInterest")
        oi = float(single if single not in (None, "") else r.get("openInterest", "nan") or "nan")
        out[str(r["symbol"])] = (float(r["markPrice"]), float(r.get("indexPrice") or "nan"), oi)
    return out


def parse_instruments(res: dict) -> tuple[dict[str, SymbolInfo], str]:
    """``/v5/market/instruments-info`` result → ({symbol: info}, next cursor). A symbol of an
    odd shape is skipped rather than hiding the others."""
    out = {}
    for s in _list(res, "instruments-info"):
        try:
            launch = s.get("launchTime")
            info = SymbolInfo(
                symbol=s["symbol"], base=s.get("baseCoin", ""), quote=s.get("quoteCoin", ""),
                tick_size=float(s["priceFilter"]["tickSize"]),
                step_size=float(s["lotSizeFilter"]["qtyStep"]),
                onboard_ms=int(launch) if launch not in (None, "", "0") else None,
                status=s.get("status", ""), contract_type=s.get("contractType", ""))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        out[info.symbol] = info
    cursor = res.get("nextPageCursor") or ""
    return out, cursor if isinstance(cursor, str) else ""
