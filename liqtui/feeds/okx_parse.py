"""OKX v5 (USDT/USDC-margined perpetual swaps) wire data → normalised events. Pure, no I/O.

Symbols are one name across venues: ``inst_id("BTCUSDT") == "BTC-USDT-SWAP"`` and back with
``symbol_of``. Inverse (``-USD-SWAP``, coin-margined) swaps, futures and spot are not ours and
are refused by name.

Sizes on OKX swaps are **contracts**: base = contracts × ``ctVal`` (read from
``/api/v5/public/instruments``, never hard-coded), so the parser needs an ``Instruments``
table. Trades, liquidations and candles of an instrument missing from it (or not a linear
swap) are counted as ``foreign`` and dropped.

WebSocket: ``parse_message(data, instruments, counters)`` takes one message (``str`` or UTF-8
``bytes``) and returns events (``Trade``, ``MarkPrice``, ``OpenInterest``, ``Liquidation``,
``Bar`` for ``candle1m``) or ``Reply`` (subscribe/unsubscribe acks, one per arg; ``error``,
which does not close the socket; ``notice``; the literal text ``pong``, which is not JSON).
It never raises: bad input is counted as ``malformed``, channels we do not use as ``unknown``.

Liquidations: ``side`` is the position wiped (``posSide`` long/short; with ``net``, a sell
order wiped a long). Their ``price`` is OKX's ``bkPx``, the **bankruptcy** price (where the
position's margin is gone), which lies beyond the real fill; OKX publishes no fill price.
Pushes come late and out of order: nothing here assumes monotonic time.

REST: the envelope ``{"code": "0", "msg": "", "data": [...]}`` is checked by ``unwrap``; a
non-"0" code is an error even with HTTP 200. Candles (and mark-price candles) come newest
first; ``parse_candles`` / ``parse_mark_candles`` return them oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import COUNTER_KEYS as _BASE_KEYS
from .events import Bar, Liquidation, MarkPrice, OpenInterest, Reply, Trade

try:  # orjson decodes these small frames ~2-3× faster than json
    from orjson import loads
except ImportError:  # pragma: no cover - orjson is a dependency
    from json import loads

VENUE = "okx"
COUNTER_KEYS = _BASE_KEYS + ("foreign",)  # instruments that are not ours
QUOTES = ("USDT", "USDC")
from ..units import MINUTE as MINUTE_MS  # noqa: E402
_INF = float("inf")
_NAN = float("nan")


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTER_KEYS, 0)


# ---------------------------------------------------------------------------- symbols

def inst_id(symbol: str) -> str:
    """``BTCUSDT`` → ``BTC-USDT-SWAP`` (linear USDT/USDC swaps only); ValueError otherwise."""
    s = symbol.strip().upper()
    for q in QUOTES:
        if s.endswith(q) and len(s) > len(q) and s[:-len(q)].isalnum():
            return f"{s[:-len(q)]}-{q}-SWAP"
    if s.endswith("USD") and len(s) > 3:
        raise ValueError(f"symbol {symbol!r}: OKX coin-margined (inverse) swaps such as "
                         f"{s[:-3]}-USD-SWAP are not supported; use {s[:-3]}USDT")
    raise ValueError(f"symbol {symbol!r}: expected a USDT- or USDC-margined perpetual such as "
                     "BTCUSDT")


def symbol_of(inst: str) -> str:
    """``BTC-USDT-SWAP`` → ``BTCUSDT``; ValueError for inverse swaps, futures and spot."""
    parts = inst.split("-") if isinstance(inst, str) else ()
    if len(parts) == 3 and parts[2] == "SWAP" and parts[0]:
        if parts[1] in QUOTES:
            return parts[0] + parts[1]
        if parts[1] == "USD":
            raise ValueError(f"OKX instrument {inst!r} is a coin-margined (inverse) swap: "
                             "not supported")
    raise ValueError(f"OKX instrument {inst!r}: expected a linear swap such as BTC-USDT-SWAP")


@dataclass(frozen=True, slots=True)
class Instrument:
    inst_id: str
    symbol: str          # our name ("" for instruments that are not ours)
    ct_val: float        # contract value, in ct_val_ccy
    ct_val_ccy: str
    ct_type: str         # "linear" | "inverse"
    tick_sz: float
    lot_sz: float
    state: str           # "live", "suspend", "preopen", ...
    list_time: int | None = None

    @property
    def ours(self) -> bool:
        return bool(self.symbol) and self.ct_type == "linear"

    # the names Binance's ``SymbolInfo`` uses, so callers can treat venues alike
    @property
    def tick_size(self) -> float:
        return self.tick_sz

    @property
    def step_size(self) -> float:
        """The smallest size step in base units (one lot of contracts × ctVal)."""
        return self.lot_sz * self.ct_val

    @property
    def status(self) -> str:
        return self.state


class Instruments:
    """The venue's swaps by ``instId``, with the ctVal the parser converts sizes with."""

    def __init__(self, items=()):
        self.by_id: dict[str, Instrument] = {i.inst_id: i for i in items}
        # the hot path: instId → (symbol, ctVal) for linear swaps only
        self.conv: dict[str, tuple[str, float]] = {
            i.inst_id: (i.symbol, i.ct_val) for i in self.by_id.values() if i.ours}

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, inst: str) -> bool:
        return inst in self.by_id

    def get(self, inst: str) -> Instrument | None:
        return self.by_id.get(inst)

    def symbols(self) -> dict[str, Instrument]:
        """Our symbols (linear swaps) by name."""
        return {i.symbol: i for i in self.by_id.values() if i.ours}

    @classmethod
    def from_data(cls, data) -> "Instruments":
        """From the ``data`` list of ``/api/v5/public/instruments?instType=SWAP``; an odd
        entry is skipped, it must not hide the others."""
        if not isinstance(data, list):
            raise ValueError("instruments: expected a 'data' list")
        out = []
        for d in data:
            try:
                inst = d["instId"]
                try:
                    sym = symbol_of(inst)
                except ValueError:
                    sym = ""
                lt = d.get("listTime")
                out.append(Instrument(
                    inst, sym, _pos(d["ctVal"]), str(d.get("ctValCcy", "")),
                    str(d.get("ctType", "")), _pos(d["tickSz"]), _pos(d["lotSz"]),
                    str(d.get("state", "")), int(lt) if lt else None))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
        return cls(out)


# ---------------------------------------------------------------------------- replies
# Replies are ``events.Reply``: acks carry ``result={"event": "subscribe"|"unsubscribe",
# "arg": {...}}`` (one per arg); ``error`` and ``notice`` (64008: a service upgrade will close
# the socket) carry ``code`` and ``msg`` (``result={"event": "notice"}`` for a notice); the
# keepalive answer is ``PONG``. ``id`` is the request id OKX echoes, if any.

PONG = Reply(None, "pong")


# ---------------------------------------------------------------------------- field checks

def _pos(x) -> float:
    """A positive finite number sent as a string (or a JSON number, not bool)."""
    if x.__class__ is not str and x.__class__ is not float and x.__class__ is not int:
        raise TypeError
    v = float(x)
    if not 0.0 < v < _INF:
        raise ValueError
    return v


def _nonneg(x) -> float:
    if x.__class__ is not str and x.__class__ is not float and x.__class__ is not int:
        raise TypeError
    v = float(x)
    if not 0.0 <= v < _INF:
        raise ValueError
    return v


def _ms(x) -> int:
    """A time in ms, sent as a decimal string."""
    if x.__class__ is str:
        if not x.isdigit():
            raise ValueError
        return int(x)
    if x.__class__ is int:
        return x
    raise TypeError


# ---------------------------------------------------------------------------- channels
# Each takes (one data item, arg, conv, counters) and returns an event, or None when foreign.

def _trade(d, arg, conv, counters):
    # written out (no helpers): it runs for every trade
    c = conv.get(d["instId"])
    if c is None:
        if d["instId"].__class__ is not str:
            raise TypeError
        counters["foreign"] += 1
        return None
    px, sz, tid, ts, side = d["px"], d["sz"], d["tradeId"], d["ts"], d["side"]
    if (px.__class__ is not str or sz.__class__ is not str or tid.__class__ is not str
            or ts.__class__ is not str):
        raise TypeError
    p = float(px)
    q = float(sz) * c[1]
    t = int(ts)    # ValueError unless a decimal integer
    i = int(tid)
    if not (0.0 < p < _INF and 0.0 <= q < _INF) or t < 0 or i < 0:
        raise ValueError
    if side == "buy":
        return Trade(VENUE, c[0], t, i, p, q, True)
    if side == "sell":
        return Trade(VENUE, c[0], t, i, p, q, False)
    raise ValueError


def _mark(d, arg, conv, counters):
    inst = d["instId"]
    c = conv.get(inst)
    if c is None:
        counters["foreign"] += 1
        return None
    return MarkPrice(VENUE, c[0], _ms(d["ts"]), _pos(d["markPx"]))


def _oi(d, arg, conv, counters):
    inst = d["instId"]
    c = conv.get(inst)
    if c is None:
        counters["foreign"] += 1
        return None
    ccy = d.get("oiCcy")
    base = _nonneg(ccy) if ccy not in (None, "") else _nonneg(d["oi"]) * c[1]
    return OpenInterest(VENUE, c[0], _ms(d["ts"]), base)


def _candle(d, arg, conv, counters):
    inst = arg.get("instId")
    c = conv.get(inst)
    if c is None:
        counters["foreign"] += 1
        return None
    if d.__class__ is not list or len(d) < 9:
        raise TypeError
    confirm = d[8]
    if confirm != "0" and confirm != "1":
        raise ValueError
    # vol is contracts, volCcy base, volCcyQuote quote; no taker-buy volume: NaN
    return Bar(VENUE, c[0], _ms(d[0]), MINUTE_MS, _pos(d[1]), _pos(d[2]), _pos(d[3]),
               _pos(d[4]), _nonneg(d[6]), _nonneg(d[7]), _NAN, confirm == "1")


def _liquidations(d, conv, counters) -> list:
    """One instrument's ``details``: several liquidation orders, each its own event."""
    inst = d["instId"]
    c = conv.get(inst)
    if c is None:  # every instrument of the instType comes: not ours, or inverse/futures
        if inst.__class__ is not str:
            raise TypeError
        counters["foreign"] += 1
        return []
    details = d["details"]
    if details.__class__ is not list:
        raise TypeError
    out = []
    for x in details:
        try:
            pos = x.get("posSide")
            side = x["side"]
            if pos == "long" or pos == "short":
                wiped = pos
            elif pos == "net" or pos in (None, ""):
                if side == "sell":    # a sell order closes a long
                    wiped = "long"
                elif side == "buy":
                    wiped = "short"
                else:
                    raise ValueError
            else:
                raise ValueError
            px = _pos(x["bkPx"])      # bankruptcy price, not a fill
            qty = _pos(x["sz"]) * c[1]
            out.append(Liquidation(VENUE, c[0], _ms(x["ts"]), wiped, px, qty, qty * px))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            counters["malformed"] += 1
    return out


_CHANNELS = {
    "trades": _trade,
    "mark-price": _mark,
    "open-interest": _oi,
    "candle1m": _candle,
    "liquidation-orders": _liquidations,
}


def parse_message(data: str | bytes, instruments: Instruments | dict,
                  counters: dict[str, int] | None = None) -> list:
    """Events or ``Reply`` in one WebSocket message; bad input is counted, never raised.

    ``instruments``: an ``Instruments`` (or its ``conv`` dict: instId → (symbol, ctVal)).
    """
    if counters is None:
        counters = new_counters()
    counters["frames"] += 1
    try:
        msg = loads(data)
    except Exception:  # bad JSON, bad UTF-8, not text; or the keepalive reply
        if data == "pong" or data == b"pong":   # plain text, not JSON
            counters["replies"] += 1
            return [PONG]
        counters["malformed"] += 1
        return []
    try:  # the usual push first: {"arg": {"channel": …, …}, "data": [item]}
        rows = msg["data"]
        arg = msg["arg"]
        f = _CHANNELS[arg["channel"]]
    except KeyError:
        if "data" not in msg:
            return _reply(msg, counters)
        arg = msg.get("arg")
        if arg.__class__ is dict and "channel" in arg:
            counters["unknown"] += 1  # tickers, books, ... (not subscribed by us)
        else:
            counters["malformed"] += 1
        return []
    except TypeError:  # not an object, arg not an object, channel not a string
        counters["malformed"] += 1
        return []
    conv = instruments.conv if instruments.__class__ is Instruments else instruments
    try:
        if rows.__class__ is not list:
            raise TypeError
        if len(rows) == 1:      # the usual push: one item
            if f is _liquidations:
                out = _liquidations(rows[0], conv, counters)
            else:
                ev = f(rows[0], arg, conv, counters)
                out = [] if ev is None else [ev]
        elif f is _liquidations:  # a bad order is counted, the good ones still count
            out = [ev for d in rows for ev in _liquidations(d, conv, counters)]
        else:
            out = [ev for ev in (f(d, arg, conv, counters) for d in rows) if ev is not None]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        counters["malformed"] += 1
        return []
    counters["events"] += len(out)
    return out


def _reply(msg: dict, counters) -> list:
    ev = msg.get("event")
    if ev.__class__ is not str:
        counters["unknown"] += 1
        return []
    arg = msg.get("arg")
    rid = msg.get("id")
    if (arg is not None and arg.__class__ is not dict) or (
            rid is not None and rid.__class__ is not str):
        counters["malformed"] += 1
        return []
    counters["replies"] += 1
    if ev == "error":  # the socket stays open: the other args of the request still count
        code, text = msg.get("code", ""), msg.get("msg", "")
        return [Reply(rid, None, str(code), text if isinstance(text, str) else "")]
    if ev == "notice":
        text = msg.get("msg", "")
        return [Reply(rid, {"event": ev}, str(msg.get("code", "")),
                      text if isinstance(text, str) else "")]
    return [Reply(rid, {"event": ev, "arg": arg})]


# ---------------------------------------------------------------------------- REST bodies

class OkxApiError(ValueError):
    """A REST answer whose ``code`` is not "0" (the HTTP status may still be 200)."""

    def __init__(self, code: str, msg: str):
        super().__init__(f"OKX error {code}: {msg}" if msg else f"OKX error {code}")
        self.code, self.msg = code, msg


def unwrap(body) -> list:
    """The ``data`` list of an OKX envelope; ``OkxApiError`` for a non-"0" code, ValueError
    for a body of the wrong shape."""
    if not isinstance(body, dict) or "code" not in body:
        raise ValueError("expected an OKX envelope {code, msg, data}")
    code = str(body["code"])
    if code != "0":
        msg = body.get("msg")
        raise OkxApiError(code, msg if isinstance(msg, str) else "")
    data = body.get("data")
    if not isinstance(data, list):
        raise ValueError("expected a 'data' list")
    return data


def parse_candles(data, ct_val: float) -> list[tuple]:
    """Candle rows (newest first, ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``) →
    oldest-first (open_ms, o, h, l, c, volume (base), quote_volume, confirmed). Base volume is
    ``volCcy``, or contracts × ctVal where a row lacks it."""
    rows = []
    for r in data:
        if not isinstance(r, list) or len(r) < 6:
            raise ValueError(f"candles: bad row {str(r)[:80]}")
        base = float(r[6]) if len(r) > 6 and r[6] != "" else float(r[5]) * ct_val
        quote = float(r[7]) if len(r) > 7 and r[7] != "" else _NAN
        rows.append((int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), base,
                     quote, len(r) <= 8 or r[8] == "1"))
    rows.reverse()
    return rows


def parse_mark_candles(data) -> list[tuple]:
    """Mark-price candle rows (newest first, ``[ts, o, h, l, c, confirm]``) → oldest-first
    (open_ms, o, h, l, c)."""
    rows = []
    for r in data:
        if not isinstance(r, list) or len(r) < 5:
            raise ValueError(f"mark-price candles: bad row {str(r)[:80]}")
        rows.append((int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4])))
    rows.reverse()
    return rows


def parse_oi_history(data) -> list[tuple[int, float]]:
    """``/api/v5/rubik/stat/contracts/open-interest-history`` rows ``[ts, oi, oiCcy, oiUsd]``
    (newest first) → oldest-first (ts, base): the open interest at the instant ts."""
    rows = []
    for r in data:
        if not isinstance(r, list) or len(r) < 3:
            raise ValueError(f"open-interest-history: bad row {str(r)[:80]}")
        rows.append((int(r[0]), float(r[2])))
    rows.sort()
    return rows
