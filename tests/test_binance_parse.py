"""Binance wire parsers: every real fixture frame → the right event; bad input never raises."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqtui.feeds.binance_parse import (
    Reply,
    new_counters,
    parse_exchange_info,
    parse_frame,
    parse_klines,
    parse_oi_hist,
    parse_open_interest,
)
from liqtui.feeds.events import Bar, Liquidation, MarkPrice, Trade

# real recorded frames, copied with their provenance from ../shared/fixtures/real/
FIX = Path(__file__).resolve().parent / "fixtures" / "real" / "binance"
WS_FILE = FIX / "cryptofeed_usdm_ws_combined_2021-07-22.jsonl"
FORCE_FILE = FIX / "forceOrder_frames_real.jsonl"
assert FIX.is_dir(), f"the real fixtures are missing: {FIX}"


def _raw_frames(path):
    return [json.loads(line)["raw"] for line in path.read_text().splitlines()
            if line.strip() and "raw" in json.loads(line)]


def one(frame, counters=None):
    evs = parse_frame(frame, counters)
    assert len(evs) == 1, evs
    return evs[0]


# ---------------------------------------------------------------------------- real frames


def test_documented_aggtrade_frame():
    ev = one('{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,'
             '"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,"l":23961322,'
             '"T":1626992741421,"m":false}}')
    assert ev == Trade("binance", "CTKUSDT", 1626992741421, 16599292, 1.011, 10.0, True)


def test_every_recorded_ws_frame():
    """All 188 frames: 91 aggTrade and 67 kline_1m become events; depth and bookTicker are
    counted as unknown. Expected values are read from the raw JSON field by field."""
    frames = _raw_frames(WS_FILE)
    assert len(frames) == 188
    c = new_counters()
    kinds = {"aggTrade": 0, "kline_1m": 0, "other": 0}
    for raw in frames:
        msg = json.loads(raw)
        d = msg["data"]
        evs = parse_frame(raw, c)
        if msg["stream"].endswith("@aggTrade"):
            kinds["aggTrade"] += 1
            assert evs == [Trade("binance", d["s"], d["T"], d["a"], float(d["p"]), float(d["q"]),
                                 taker_buy=not d["m"])]
        elif msg["stream"].endswith("@kline_1m"):
            kinds["kline_1m"] += 1
            k = d["k"]
            assert evs == [Bar("binance", k["s"], k["t"], 60_000, float(k["o"]), float(k["h"]),
                               float(k["l"]), float(k["c"]), float(k["v"]), float(k["q"]),
                               float(k["Q"]), k["x"])]
        else:
            kinds["other"] += 1
            assert evs == []
    assert kinds == {"aggTrade": 91, "kline_1m": 67, "other": 30}
    assert c == {"frames": 188, "events": 158, "malformed": 0, "unknown": 30, "replies": 0}


def test_recorded_closed_kline():
    raw = next(f for f in _raw_frames(WS_FILE)
               if '"sushiusdt@kline_1m"' in f and '"x":true' in f)
    bar = one(raw)
    assert bar == Bar("binance", "SUSHIUSDT", 1626992700000, 60_000, 7.608, 7.618, 7.607, 7.617,
                      3005.0, 22875.859, 14464.696, True)
    taker_sold = [one(f) for f in _raw_frames(WS_FILE) if '"m":true' in f]
    assert taker_sold and not any(t.taker_buy for t in taker_sold)


FORCE_EXPECTED = [
    # 2020 per-symbol stream, BUY → a short was wiped; z·ap
    Liquidation("binance", "BTCUSDT", 1584059031421, "short", 4706.04, 0.014, 0.014 * 4706.04),
    # 2021 !forceOrder@arr, SELL → long
    Liquidation("binance", "IOTXUSDT", 1634653599180, "long", 0.06669, 3661.0, 3661 * 0.06669),
    # 2023 raw /ws payload (no combined wrapper)
    Liquidation("binance", "BTCUSDT", 1695714031881, "long", 26245.10, 0.115, 0.115 * 26245.10),
    # 2026 /market frames with the newer ps / st keys
    Liquidation("binance", "BTCUSDT", 1790845665206, "short", 83598.50, 0.001, 0.001 * 83598.50),
    # partial last fill l < z: the notional uses z, not l
    Liquidation("binance", "BTCUSDT", 1791565602120, "long", 82651.90, 0.190, 0.190 * 82651.90),
]


@pytest.mark.parametrize("i", range(5))
def test_every_recorded_force_order(i):
    frames = _raw_frames(FORCE_FILE)
    assert len(frames) == 5
    ev = one(frames[i])
    exp = FORCE_EXPECTED[i]
    assert (ev.venue, ev.symbol, ev.time, ev.side) == (exp.venue, exp.symbol, exp.time, exp.side)
    assert ev.price == pytest.approx(exp.price, rel=1e-12)
    assert ev.qty == pytest.approx(exp.qty, rel=1e-12)
    assert ev.notional == pytest.approx(exp.notional, rel=1e-12)


def test_force_order_falls_back_to_q_times_p():
    base = {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.5", "p": "60000",
            "X": "NEW", "l": "0", "T": 1}
    for extra in ({"z": "0", "ap": "0"}, {"z": "0.4", "ap": "0"}, {"z": "0", "ap": "61000"}, {}):
        ev = one(json.dumps({"e": "forceOrder", "E": 2, "o": base | extra}))
        assert (ev.side, ev.qty, ev.price, ev.notional) == ("long", 0.5, 60000.0, 30000.0)


def test_mark_price_doc_frame():
    ev = one('{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
             '"i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}')
    assert ev == MarkPrice("binance", "BTCUSDT", 1562305380000, 11794.15, 11784.62659091)
    # the combined form, and an array payload (!markPrice@arr) gives one event per element
    inner = '{"e":"markPriceUpdate","E":5,"s":"ETHUSDT","p":"3000.5","i":"3000"}'
    assert one('{"stream":"ethusdt@markPrice@1s","data":%s}' % inner).price == 3000.5
    evs = parse_frame('{"stream":"!markPrice@arr@1s","data":[%s,%s]}' % (inner, inner))
    assert len(evs) == 2


def test_subscription_replies_are_recognised():
    c = new_counters()
    assert parse_frame('{"result":null,"id":1}', c) == [Reply(1, None)]
    assert parse_frame('{"result":["btcusdt@aggTrade"],"id":3}', c) == [
        Reply(3, ["btcusdt@aggTrade"])]
    assert parse_frame('{"code":2,"msg":"Invalid request","id":7}', c) == [
        Reply(7, None, 2, "Invalid request")]
    assert parse_frame('{"code":3,"msg":"Invalid JSON"}', c) == [Reply(None, None, 3, "Invalid JSON")]
    assert c["replies"] == 4 and c["malformed"] == 0 and c["events"] == 0


def test_unknown_extra_keys_are_ignored():
    raw = ('{"stream":"btcusdt@aggTrade","sim_extra":{"n":1},"data":{"e":"aggTrade","E":1,'
           '"a":7,"s":"BTCUSDT","p":"100.5","q":"2","nq":"2","f":1,"l":1,"T":9,"m":true,'
           '"new":[1,{"x":null}]}}')
    assert one(raw) == Trade("binance", "BTCUSDT", 9, 7, 100.5, 2.0, False)


@pytest.mark.parametrize("raw, key", [
    ("", "malformed"),
    ("not json", "malformed"),
    ('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","a":1,"p":"1', "malformed"),
    ("[1,2,3]", "malformed"),
    ("null", "malformed"),
    ('{"stream":null,"data":[1,2,3]}', "malformed"),
    ('{"e":"aggTrade","E":"soon","p":null}', "malformed"),
    ('{"e":"aggTrade","E":1,"a":"7","s":"X","p":"1","q":"1","T":1,"m":true}', "malformed"),
    ('{"e":"aggTrade","E":1,"a":7,"s":"X","p":"1","q":"1","T":1,"m":"true"}', "malformed"),
    ('{"e":"aggTrade","E":1,"a":7,"s":"X","p":"nan","q":"1","T":1,"m":true}', "malformed"),
    ('{"e":"aggTrade","E":1,"a":7,"s":"X","p":"-3","q":"1","T":1,"m":true}', "malformed"),
    ('{"e":"aggTrade","E":1,"a":true,"s":"X","p":"1","q":"1","T":1,"m":true}', "malformed"),
    ('{"e":"kline","E":1,"s":"X","k":{"t":5,"T":1,"o":"1","h":"1","l":"1","c":"1","v":"1",'
     '"q":"1","Q":"1","x":true}}', "malformed"),
    ('{"e":"forceOrder","E":1,"o":{"s":"X","S":"HOLD","q":"1","p":"1","T":1}}', "malformed"),
    ('{"e":"depthUpdate","E":1}', "unknown"),
    ('{"stream":"x","data":{"e":"somethingNew"}}', "unknown"),
    ('{"hello":"world"}', "unknown"),
    (b"\xff\xfe\x00", "malformed"),
    ("[" * 5000, "malformed"),
])
def test_bad_frames_are_counted_not_raised(raw, key):
    c = new_counters()
    assert parse_frame(raw, c) == []
    assert c[key] >= 1 and c["frames"] == 1 and c["events"] == 0


def test_bytes_frames_parse_like_text():
    raw = '{"e":"markPriceUpdate","E":5,"s":"SOLUSDT","p":"150.25","i":"150.2"}'
    assert parse_frame(raw.encode()) == parse_frame(raw)


# ---------------------------------------------------------------------------- properties

PROP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["e", "E", "a", "s", "p", "q", "T", "m", "k", "o", "S", "z", "ap", "x",
                         "t", "i", "data", "stream", "result", "id", "code", "msg"])
        | st.text(max_size=4), inner, max_size=8),
    max_leaves=25,
)

TEMPLATES = [
    {"e": "aggTrade", "E": 1, "a": 7, "s": "BTCUSDT", "p": "100.5", "q": "2", "f": 1, "l": 1,
     "T": 9, "m": True},
    {"e": "kline", "E": 1, "s": "BTCUSDT", "k": {"t": 0, "T": 59_999, "s": "BTCUSDT", "i": "1m",
     "o": "1", "c": "2", "h": "3", "l": "0.5", "v": "4", "n": 1, "x": False, "q": "5",
     "V": "1", "Q": "2", "B": "0"}},
    {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "1.5", "i": "1.4", "P": "1", "r": "0",
     "T": 2},
    {"e": "forceOrder", "E": 1, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC",
     "q": "1", "p": "2", "ap": "2.1", "X": "FILLED", "l": "1", "z": "1", "T": 1}},
]


def _check(frame):
    c = new_counters()
    evs = parse_frame(frame, c)
    assert isinstance(evs, list)
    assert c["frames"] == 1
    assert c["events"] + c["malformed"] + c["unknown"] + c["replies"] >= 1 or evs == []
    for ev in evs:
        if isinstance(ev, (Trade, Bar, MarkPrice, Liquidation)):
            for v in (getattr(ev, "price", None), getattr(ev, "close", None)):
                if v is not None:
                    assert math.isfinite(v) and v > 0


@PROP
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(b):
    _check(b)


@PROP
@given(st.text(max_size=200))
def test_random_text_never_raises(s):
    _check(s)


@PROP
@given(json_values)
def test_random_json_never_raises(v):
    _check(json.dumps(v))
    _check(json.dumps({"stream": "x", "data": v}))


@PROP
@given(st.sampled_from(TEMPLATES), st.data())
def test_truncated_frames_never_raise(tpl, data):
    raw = json.dumps({"stream": "s", "data": tpl})
    cut = data.draw(st.integers(0, len(raw) - 1))
    c = new_counters()
    assert parse_frame(raw[:cut], c) == []
    assert c["malformed"] == 1


def _paths(obj, prefix=()):
    for k, v in obj.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))


@PROP
@given(st.sampled_from(TEMPLATES), st.data(), json_values)
def test_wrong_types_never_raise(tpl, data, value):
    """Replace one field anywhere in a valid payload by an arbitrary JSON value."""
    frame = json.loads(json.dumps(tpl))
    path = data.draw(st.sampled_from(list(_paths(frame))))
    node = frame
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    _check(json.dumps({"stream": "s", "data": frame}))


# ---------------------------------------------------------------------------- REST bodies


def test_exchange_info_fixture():
    body = json.loads((FIX / "cryptofeed_rest_exchangeInfo_2021-07-22_trimmed.json").read_text())
    syms, weight = parse_exchange_info(body["body"])
    assert weight == 2400
    assert set(syms) == {"BTCUSDT", "ETHUSDT", "SUSHIUSDT", "CTKUSDT", "AKROUSDT", "KEEPUSDT"}
    btc = syms["BTCUSDT"]
    assert (btc.base, btc.quote, btc.tick_size, btc.step_size, btc.status, btc.contract_type,
            btc.onboard_ms) == ("BTC", "USDT", 0.01, 0.001, "TRADING", "PERPETUAL", 1569398400000)
    assert syms["KEEPUSDT"].onboard_ms == 1624172400000


def test_rest_examples_fixture():
    doc = json.loads((FIX / "rest_examples_captured_in_docs.json").read_text())
    rows = parse_klines(doc["klines_BTCUSDT_5m_limit2"]["body"])
    assert rows == [
        (1616338800000, 57212.69, 57315.00, 57196.19, 57300.00, 496.263, 28425514.78940,
         15642623.69718),
        (1616339100000, 57300.00, 57300.00, 57200.61, 57206.47, 174.865, 10009130.07051,
         3457649.49072),
    ]
    assert parse_oi_hist(doc["openInterestHist_BTCUSDT_5m_limit1"]["body"]) == [
        (1616438700000, 34085.0)]
    # the documented string timestamp form
    assert parse_oi_hist([{"symbol": "BTCUSDT", "sumOpenInterest": "20403.637",
                           "sumOpenInterestValue": "150570784.07",
                           "timestamp": "1583127900000"}]) == [(1583127900000, 20403.637)]
    assert parse_open_interest({"openInterest": "10659.509", "symbol": "BTCUSDT",
                                "time": 1589437530011}) == ("BTCUSDT", 1589437530011, 10659.509)


@pytest.mark.parametrize("body", [None, {}, [[1, 2]], [["x"] * 12], [{"timestamp": 1}]])
def test_rest_bodies_of_the_wrong_shape_raise_valueerror(body):
    for f in (parse_klines, parse_oi_hist):
        with pytest.raises((ValueError, KeyError, TypeError)):
            f(body)
