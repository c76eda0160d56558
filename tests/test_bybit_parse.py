"""Bybit v5 wire parsers: every real fixture frame → the right events; bad input never raises."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqtui.feeds.bybit_parse import (
    RetCodeError,
    TickerBook,
    parse_frame,
    parse_instruments,
    parse_klines,
    parse_open_interest,
    parse_tickers,
    result,
)
from liqtui.feeds.events import (
    Bar,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Reply,
    Trade,
    new_counters,
)

# real recorded frames, copied with their provenance from ../shared/fixtures/real/bybit
FIX = Path(__file__).resolve().parent / "fixtures" / "real" / "bybit"
WS_FILE = FIX / "cryptofeed_v5_linear_ws_2026-08-10.jsonl"
LIQ_FILE = FIX / "liquidation_and_ticker_frames_real.jsonl"
INSTR_FILE = FIX / "cryptofeed_v5_instruments_linear_2026-08-10_trimmed.json"
assert FIX.is_dir(), f"the real fixtures are missing: {FIX}"


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _recv(path):
    return [r["raw"] for r in _records(path) if "raw" in r and r.get("kind", "recv") == "recv"]


# ---------------------------------------------------------------------------- real frames


def test_every_recorded_ws_frame_parses_to_what_its_json_says():
    """All 240 received frames of the 2026 session: trades, klines, tickers and acks become
    events or replies; the orderbook frames are the only ones counted as unknown. Expected
    values are read from each frame's JSON field by field."""
    frames = _recv(WS_FILE)
    assert len(frames) == 240
    c, book = new_counters(), TickerBook()
    n = {"trades": 0, "bars": 0, "acks": 0, "orderbook": 0}
    for raw in frames:
        msg = json.loads(raw)
        evs = parse_frame(raw, c, book)
        topic = msg.get("topic", "")
        if topic.startswith("publicTrade."):
            assert len(evs) == len(msg["data"]) >= 1
            for ev, d in zip(evs, msg["data"]):
                assert ev == Trade("bybit", d["s"], d["T"], d["i"], float(d["p"]), float(d["v"]),
                                   d["S"] == "Buy")
            n["trades"] += len(evs)
        elif topic.startswith("kline.1."):
            assert [(b.time, b.closed, b.close, b.volume, b.quote_volume) for b in evs] == [
                (d["start"], d["confirm"], float(d["close"]), float(d["volume"]),
                 float(d["turnover"])) for d in msg["data"]]
            assert all(b.interval_ms == 60_000 and math.isnan(b.taker_buy_quote_volume)
                       for b in evs)
            n["bars"] += len(evs)
        elif topic.startswith("tickers."):
            d = msg["data"]
            marks = [e for e in evs if isinstance(e, MarkPrice)]
            ois = [e for e in evs if isinstance(e, OpenInterest)]
            assert len(marks) == ("markPrice" in d) and len(ois) == ("singleOpenInterest" in d)
            for e in marks:
                assert e.price == float(d["markPrice"]) and e.time == msg["ts"]
        elif topic.startswith("orderbook."):
            assert evs == []
            n["orderbook"] += 1
        else:
            assert evs == [Reply("", "subscribe", None, "")]
            n["acks"] += 1
    assert n["acks"] == 17 and n["orderbook"] == 6 and n["bars"] > 71 and n["trades"] > 102
    assert c["malformed"] == 0 and c["unknown"] == 6 and c["replies"] == 17
    assert c["frames"] == 240 and "block_trades" not in c


def test_hand_checked_trade_kline_and_ticker_frames():
    frames = _recv(WS_FILE)
    first_trade = next(f for f in frames if '"publicTrade.BTCUSDT"' in f)
    assert parse_frame(first_trade) == [Trade(
        "bybit", "BTCUSDT", 1786310819680, "a9188a0a-82bc-50de-be60-03eedbe3cdd7", 65114.2,
        0.004, False)]
    # the minute turns: the closed candle and the new one in one push
    two = next(f for f in frames if '"kline.1.ETHUSDT"' in f and '"confirm":true' in f)
    closed, new = parse_frame(two)
    assert closed == Bar("bybit", "ETHUSDT", 1786310760000, 60_000, 1922.43, 1922.48, 1922.42,
                         1922.48, 15.7, 30182.0724, closed.taker_buy_quote_volume, True)
    assert math.isnan(closed.taker_buy_quote_volume)
    assert (new.time, new.closed, new.volume) == (1786310820000, False, 0.0)
    # the BTCUSDT snapshot, then a delta with only the mark and the OI values changed
    book = TickerBook()
    snap = next(f for f in frames if '"tickers.BTCUSDT","type":"snapshot"' in f)
    assert parse_frame(snap, book=book) == [
        MarkPrice("bybit", "BTCUSDT", 1786310817583, 65117.44, 65137.76),
        OpenInterest("bybit", "BTCUSDT", 1786310817583, 29945.866)]  # single side, not 59891.732
    delta = next(f for f in frames if '"markPrice":"65117.43"' in f)
    assert parse_frame(delta, book=book) == [
        MarkPrice("bybit", "BTCUSDT", 1786310818183, 65117.43, 65137.76)]  # index from the book
    assert book.state["BTCUSDT"]["singleOpenInterestValue"] == "1949997833.04"
    assert book.state["BTCUSDT"]["lastPrice"] == "65114.30"  # untouched by the delta


def test_liquidations_old_topic_and_pre_2026_ticker():
    frames = _recv(LIQ_FILE)
    assert len(frames) == 4
    c = new_counters()
    pippin, btc, old, ticker = (parse_frame(f, c) for f in frames)
    # Sell = the position side: a short was wiped; p is the bankruptcy price, kept as given
    assert pippin == [Liquidation("bybit", "PIPPINUSDT", 1740480207110, "short", 0.02456, 2846.0,
                                  2846.0 * 0.02456)]
    assert btc == [Liquidation("bybit", "BTCUSDT", 1791565600992, "long", 82396.9, 0.006,
                               0.006 * 82396.9),
                   Liquidation("bybit", "BTCUSDT", 1791565601058, "long", 82394.3, 0.038,
                               0.038 * 82394.3)]
    assert old == [Liquidation("bybit", "GALAUSDT", 1673251091822, "long", 0.03803, 1637.0,
                               1637.0 * 0.03803)]
    # 2023: no single-side fields yet, openInterest is used as it is
    oi = [e for e in ticker if isinstance(e, OpenInterest)]
    raw = json.loads(frames[3])["data"]
    assert "singleOpenInterest" not in raw and oi == [
        OpenInterest("bybit", "BTCUSDT", json.loads(frames[3])["ts"], float(raw["openInterest"]))]
    assert c["malformed"] == c["unknown"] == 0


def test_instruments_info():
    body = json.loads(INSTR_FILE.read_text())["body"]
    syms, cursor = parse_instruments(result(body, "instruments-info"))
    assert cursor == "" and set(syms) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"}
    btc = syms["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.status, btc.contract_type, btc.onboard_ms,
            btc.base) == (0.1, 0.001, "Trading", "LinearPerpetual", 1584230400000, "BTC")
    assert syms["DOGEUSDT"].tick_size == 0.00001 and syms["DOGEUSDT"].step_size == 1.0


# ---------------------------------------------------------------------------- control frames


def test_acks_pongs_failures_and_notice():
    assert parse_frame('{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"7",'
                       '"op":"ping"}') == [Reply("7", "pong", None, "pong")]
    assert parse_frame('{"success":false,"ret_msg":"handler not found,topic:liquidation.BTCUSDT",'
                       '"conn_id":"x","req_id":"3","op":"subscribe"}') == [
        Reply("3", "subscribe", "error", "handler not found,topic:liquidation.BTCUSDT")]
    assert parse_frame('{"event":"notice","code":"64008","msg":"soon closed"}') == [
        Reply(None, "notice", "64008", "soon closed")]
    c = new_counters()
    assert parse_frame('{"success":"yes","op":"subscribe"}', c) == [] and c["malformed"] == 1


def test_ticker_deltas_merge_per_symbol():
    book = TickerBook()

    def tick(kind, ts, **data):
        return json.dumps({"topic": "tickers.X", "type": kind, "ts": ts,
                           "data": {"symbol": "X", **data}})
    assert parse_frame(tick("delta", 1, bid1Price="1"), book=book) == []
    evs = parse_frame(tick("snapshot", 2, markPrice="10", indexPrice="11", openInterest="8",
                           singleOpenInterest="4"), book=book)
    assert evs == [MarkPrice("bybit", "X", 2, 10.0, 11.0), OpenInterest("bybit", "X", 2, 4.0)]
    # openInterest alone changed: the single side from the book still wins
    assert parse_frame(tick("delta", 3, openInterest="9"), book=book) == [
        OpenInterest("bybit", "X", 3, 4.0)]
    assert parse_frame(tick("delta", 4, singleOpenInterest="4.5", openInterest="9"),
                       book=book) == [OpenInterest("bybit", "X", 4, 4.5)]
    # a new snapshot replaces the state (a reconnect)
    parse_frame(tick("snapshot", 5, markPrice="12", openInterest="7"), book=book)
    assert "singleOpenInterest" not in book.state["X"]


def test_block_trades_are_dropped_and_counted():
    c = new_counters()
    frame = json.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 5, "data": [
        {"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "100", "i": "a", "BT": True},
        {"T": 2, "s": "BTCUSDT", "S": "Sell", "v": "2", "p": "101", "i": "b", "BT": False},
        {"T": 3, "s": "BTCUSDT", "S": "Up", "v": "2", "p": "101", "i": "c"},
        {"T": 4, "s": "BTCUSDT", "S": "Buy", "v": "2", "p": "-1", "i": "d"}]})
    assert parse_frame(frame, c) == [Trade("bybit", "BTCUSDT", 2, "b", 101.0, 2.0, False)]
    assert c["block_trades"] == 1 and c["malformed"] == 2 and c["events"] == 1


# ---------------------------------------------------------------------------- REST bodies


def test_rest_envelopes_and_newest_first_lists():
    with pytest.raises(RetCodeError) as e:
        result({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}}, "k")
    assert e.value.code == 10001 and "symbol invalid" in str(e.value)
    with pytest.raises(ValueError):
        result([], "k")
    kl = {"symbol": "BTCUSDT", "category": "linear", "list": [
        ["1670608800000", "17071", "17073", "17027", "17055.5", "268611", "15.74"],
        ["1670605200000", "17071.5", "17071.5", "17061", "17071", "4177", "0.24"]]}
    assert parse_klines(kl) == [
        (1670605200000, 17071.5, 17071.5, 17061.0, 17071.0, 4177.0, 0.24),
        (1670608800000, 17071.0, 17073.0, 17027.0, 17055.5, 268611.0, 15.74)]
    mark = {"list": [["1670608800000", "1", "2", "0.5", "1.5"]]}
    assert parse_klines(mark) == [(1670608800000, 1.0, 2.0, 0.5, 1.5, 0.0, 0.0)]
    oi = {"list": [{"openInterest": "10", "singleOpenInterest": "5", "timestamp": "600000"},
                   {"openInterest": "8", "timestamp": "300000"}], "nextPageCursor": "abc"}
    assert parse_open_interest(oi) == ([(300000, 8.0), (600000, 5.0)], "abc")
    t = parse_tickers({"list": [{"symbol": "BTCUSDT", "markPrice": "2", "indexPrice": "3",
                                 "openInterest": "10", "singleOpenInterest": "5"}]})
    assert t == {"BTCUSDT": (2.0, 3.0, 5.0)}


# ---------------------------------------------------------------------------- never raises


BAD = ["", "{", "null", "[1,2]", '{"topic":5}', '{"topic":[1]}', '{"topic":{"a":1}}', '{"topic":"publicTrade.X","data":{}}',
       '{"topic":"kline.1.X","data":[{"start":"a"}]}', '{"topic":"tickers.X","type":"delta"}',
       '{"topic":"tickers.X","type":"delta","ts":1,"data":{"symbol":"X","markPrice":"-1"}}',
       '{"topic":"allLiquidation.X","data":[{"T":1,"s":"X","S":"Long","v":"1","p":"1"}]}',
       b"\xff\xfe", '{"topic":"orderbook.50.X","data":{}}', '{"foo":1}']


def test_bad_frames_are_counted_never_raised():
    c = new_counters()
    for f in BAD:
        assert parse_frame(f, c) == [] or all(isinstance(e, Reply) for e in parse_frame(f))
    assert c["malformed"] >= 11 and c["unknown"] == 2 and c["events"] == 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["topic", "data", "type", "ts", "op", "success", "T", "s", "S", "v", "p",
                         "i", "start", "end", "confirm", "interval", "open", "symbol",
                         "markPrice", "event"]), kids, max_size=6), max_leaves=20),
       st.sampled_from(["publicTrade.X", "kline.1.X", "tickers.X", "allLiquidation.X", None]))
def test_any_json_never_raises(obj, topic):
    if topic is not None and isinstance(obj, dict):
        obj = {**obj, "topic": topic}
    try:
        text = json.dumps(obj)
    except ValueError:
        return
    c = new_counters()
    parse_frame(text, c, TickerBook())
    assert c["frames"] == 1
