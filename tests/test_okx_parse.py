"""OKX wire parsers: every real fixture frame parses to the right event; bad input never
raises; symbols map one name across venues; REST envelopes and newest-first lists."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqtui.feeds.events import Bar, Liquidation, MarkPrice, OpenInterest, Reply, Trade
from liqtui.feeds.okx_parse import (
    PONG,
    Instruments,
    OkxApiError,
    inst_id,
    new_counters,
    parse_candles,
    parse_mark_candles,
    parse_message,
    parse_oi_history,
    symbol_of,
    unwrap,
)

# real recorded frames, copied with their provenance from ../shared/fixtures/real/
FIX = Path(__file__).resolve().parent / "fixtures" / "real" / "okx"
WS_FILE = FIX / "cryptofeed_v5_public_ws_2022-05-13.jsonl"
LIQ_FILE = FIX / "liquidation_oi_markprice_frames_real.jsonl"
INSTR_FILE = FIX / "cryptofeed_v5_instruments_swap_2022-05-13_trimmed.json"
assert FIX.is_dir(), f"the real fixtures are missing: {FIX}"


@pytest.fixture(scope="module")
def ins() -> Instruments:
    return Instruments.from_data(unwrap(json.loads(INSTR_FILE.read_text())["body"]))


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------- symbols


def test_symbols_are_one_name_across_venues():
    assert inst_id("BTCUSDT") == "BTC-USDT-SWAP" and inst_id(" ethusdc ") == "ETH-USDC-SWAP"
    assert symbol_of("BTC-USDT-SWAP") == "BTCUSDT" and symbol_of("SOL-USDC-SWAP") == "SOLUSDC"
    for s in ("BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "DOGEUSDC"):
        assert symbol_of(inst_id(s)) == s
    with pytest.raises(ValueError, match="inverse.*BTC-USD-SWAP.*BTCUSDT"):
        inst_id("BTCUSD")
    with pytest.raises(ValueError, match="'FOO'"):
        inst_id("FOO")
    with pytest.raises(ValueError, match="inverse"):
        symbol_of("BTC-USD-SWAP")
    for bad in ("BTC-USDT", "BTC-USD-220527", "BTC-USDT-SWAP-X", "", None):
        with pytest.raises(ValueError, match="linear swap"):
            symbol_of(bad)


def test_the_real_instruments_list(ins):
    """6 swaps recorded 2022: 3 linear (ours), 3 inverse (kept in the table, not converted)."""
    assert len(ins) == 6
    btc = ins.get("BTC-USDT-SWAP")
    assert (btc.symbol, btc.ct_val, btc.ct_val_ccy, btc.ct_type, btc.tick_sz, btc.lot_sz,
            btc.state) == ("BTCUSDT", 0.01, "BTC", "linear", 0.1, 1.0, "live")
    assert (btc.tick_size, btc.step_size, btc.status) == (0.1, 0.01, "live")  # as Binance's
    assert ins.get("ETH-USDT-SWAP").ct_val == 0.1
    inv = ins.get("BTC-USD-SWAP")
    assert (inv.ct_val, inv.ct_val_ccy, inv.ct_type, inv.ours) == (100.0, "USD", "inverse", False)
    assert set(ins.symbols()) == {"BTCUSDT", "ETHUSDT", "XRPUSDT"}
    assert ins.conv["XRP-USDT-SWAP"] == ("XRPUSDT", 100.0)
    # a broken entry is skipped, not fatal
    two = Instruments.from_data([{"instId": "X-USDT-SWAP"}, {
        "instId": "Y-USDT-SWAP", "ctVal": "1", "ctType": "linear", "tickSz": "0.1",
        "lotSz": "1"}])
    assert list(two.symbols()) == ["YUSDT"]


# ---------------------------------------------------------------------------- real frames


def test_every_recorded_public_frame(ins):
    """All 131 received frames of the 2022 recording: 18 acks (one per arg), 74 trades of
    instruments that are not ours (a dated future, an inverse swap, spot), 28 tickers and 11
    books (1 snapshot, 10 updates: channels we do not use). Nothing is malformed."""
    recs = [r for r in _records(WS_FILE) if r["kind"] == "recv"]
    assert len(recs) == 131
    c = new_counters()
    acks = []
    for r in recs:
        evs = parse_message(r["raw"], ins, c)
        assert all(isinstance(e, Reply) for e in evs)
        acks += evs
    assert c == {"frames": 131, "events": 0, "malformed": 0, "unknown": 39, "replies": 18,
                 "foreign": 74}
    assert all(a.result["event"] == "subscribe" and a.code is None for a in acks)
    # one ack per arg of the three subscribe messages sent (3 + 6 + 9 args)
    sent = [a for r in _records(WS_FILE) if r["kind"] == "send"
            for a in json.loads(r["raw"])["args"]]
    assert [a.result["arg"] for a in acks] == sent


def test_recorded_trades_as_if_ours(ins):
    """The recorded trades frames, with the instrument renamed to a linear swap we track:
    sz (contracts) × ctVal is base, side is the taker's, tradeId and ts are ints."""
    head = '{"arg":{"channel":"trades","instId":"UNI-USD-SWAP"'
    raw = next(r["raw"] for r in _records(WS_FILE)
               if r["kind"] == "recv" and r["raw"].startswith(head))
    assert '"px":"5.123","sz":"100","side":"sell","ts":"1652459215150"' in raw
    ev, = parse_message(raw.replace("UNI-USD-SWAP", "ETH-USDT-SWAP"), ins)
    assert ev == Trade("okx", "ETHUSDT", 1652459215150, 12883020, 5.123, 10.0, False)
    ev, = parse_message(raw.replace("UNI-USD-SWAP", "XRP-USDT-SWAP"), ins)
    assert ev.qty == 10_000.0  # 100 contracts of 100 XRP


def test_every_liquidation_oi_and_mark_frame(ins):
    recs = _records(LIQ_FILE)
    assert len(recs) == 8
    c = new_counters()
    out = [parse_message(r["raw"], ins, c) for r in recs]
    # 2026 production push, BTC-USDT-SWAP: 8.55 contracts × 0.01 BTC, a long wiped (sell)
    assert out[0] == [Liquidation("okx", "BTCUSDT", 1791565600771, "long", 82655.7, 0.0855,
                                  0.0855 * 82655.7)]
    assert out[1] == []  # CELO-USDT-SWAP: not in our instruments table → foreign
    # the DEMO environment's push (same shape): 10000 contracts = 100 BTC at bkPx 57102.9
    assert out[2] == [Liquidation("okx", "BTCUSDT", 1723038122631, "long", 57102.9, 100.0,
                                  100.0 * 57102.9)]
    # its subscribe ack, with the connection id
    assert out[3] == [Reply(None, {"event": "subscribe", "arg": {
        "channel": "liquidation-orders", "instType": "SWAP"}})]
    # FUTURES liquidation, and FIL futures OI / mark / inverse trades: not ours
    assert out[4:] == [[], [], [], []]
    assert c == {"frames": 8, "events": 2, "malformed": 0, "unknown": 0, "replies": 1,
                 "foreign": 5}


def test_recorded_oi_and_mark_as_if_ours(ins):
    recs = _records(LIQ_FILE)
    oi = recs[5]["raw"].replace("FIL-USDT-220325", "ETH-USDT-SWAP")
    assert parse_message(oi, ins) == [OpenInterest("okx", "ETHUSDT", 1640131202886, 23687.0)]
    # without oiCcy: oi (contracts) × ctVal
    no_ccy = oi.replace(',"oiCcy":"23687"', "")
    assert parse_message(no_ccy, ins) == [OpenInterest("okx", "ETHUSDT", 1640131202886,
                                                       23687.0)]
    mk = recs[6]["raw"].replace("FIL-USDT-220325", "BTC-USDT-SWAP")
    ev, = parse_message(mk, ins)
    assert (ev.symbol, ev.time, ev.price) == ("BTCUSDT", 1640131204676, 36.232)
    assert isinstance(ev, MarkPrice) and math.isnan(ev.index_price)


# ---------------------------------------------------------------------------- conventions


def _liq(pos, side, sz="3", px="100.5", inst="BTC-USDT-SWAP"):
    return json.dumps({"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [
        {"details": [{"bkLoss": "0", "bkPx": px, "ccy": "", "posSide": pos, "side": side,
                      "sz": sz, "ts": "1700000000000"}], "instId": inst, "instType": "SWAP"}]})


def test_liquidation_sides(ins):
    side = {(p, s): parse_message(_liq(p, s), ins)[0].side
            for p, s in (("long", "sell"), ("short", "buy"), ("net", "sell"), ("net", "buy"))}
    assert side == {("long", "sell"): "long", ("short", "buy"): "short",
                    ("net", "sell"): "long", ("net", "buy"): "short"}
    c = new_counters()
    assert parse_message(_liq("net", "hold"), ins, c) == [] and c["malformed"] == 1
    # several instruments and orders in one push: each order its own event, foreign dropped
    msg = json.loads(_liq("long", "sell"))
    msg["data"][0]["details"].append(dict(msg["data"][0]["details"][0], sz="bad"))
    msg["data"].append(dict(msg["data"][0], instId="BTC-USD-SWAP"))
    c = new_counters()
    evs = parse_message(json.dumps(msg), ins, c)
    assert len(evs) == 1 and (c["malformed"], c["foreign"], c["events"]) == (1, 1, 1)


def test_candles_channel(ins):
    row = ["1700000040000", "100.1", "101", "99.5", "100.7", "12", "0.12", "12.06", "0"]
    msg = {"arg": {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}, "data": [row]}
    ev, = parse_message(json.dumps(msg), ins)
    assert (ev.symbol, ev.time, ev.interval_ms, ev.open, ev.high, ev.low, ev.close, ev.volume,
            ev.quote_volume, ev.closed) == ("BTCUSDT", 1700000040000, 60_000, 100.1, 101.0,
                                            99.5, 100.7, 0.12, 12.06, False)
    assert isinstance(ev, Bar) and math.isnan(ev.taker_buy_quote_volume)  # OKX has none
    msg["data"][0] = row[:8] + ["1", "extra"]
    assert parse_message(json.dumps(msg), ins)[0].closed is True


def test_text_pong_events_and_errors(ins):
    assert parse_message("pong", ins) == [PONG] and parse_message(b"pong", ins) == [PONG]
    err, = parse_message('{"event":"error","code":"60018","msg":"Wrong URL or channel:candle1m,'
                         'instId:BTC-USDT-SWAP doesn\'t exist.","connId":"a4d3ae55"}', ins)
    assert (err.result, err.code) == (None, "60018") and "candle1m" in err.msg
    note, = parse_message('{"event":"notice","code":"64008","msg":"The connection will soon be '
                          'closed for a service upgrade. Please reconnect.","connId":"x"}', ins)
    assert note.result == {"event": "notice"} and note.code == "64008"


def test_bad_frames_are_counted_not_raised(ins):
    c = new_counters()
    bad = ["", "ping", "{", "[1,2]", '{"arg":{"channel":"trades"},"data":{}}',
           '{"arg":null,"data":[]}', b"\xff\xfe",
           '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":'
           '"BTC-USDT-SWAP","tradeId":"1","px":"-1","sz":"1","side":"buy","ts":"1"}]}',
           '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":'
           '"BTC-USDT-SWAP","tradeId":7,"px":"1","sz":"1","side":"buy","ts":"1"}]}',
           '{"arg":{"channel":"mark-price"},"data":[{"instId":"BTC-USDT-SWAP","markPx":"NaN",'
           '"ts":"1"}]}',
           '{"arg":{"channel":"candle1m","instId":"BTC-USDT-SWAP"},"data":[["1","1","1","1"]]}',
           '{"event":"subscribe","arg":5}']
    for frame in bad:
        assert parse_message(frame, ins, c) == []
    assert c["malformed"] == len(bad) and c["events"] == 0
    assert parse_message('{"foo":1}', ins, c) == [] and c["unknown"] == 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["arg", "data", "event", "channel", "instId", "px", "sz", "side", "ts",
                         "tradeId", "details", "posSide", "bkPx", "oi", "oiCcy", "markPx"]),
                        kids, max_size=6), max_leaves=20))
def test_fuzzed_messages_never_raise(ins, obj):
    c = new_counters()
    for frame in (json.dumps(obj), json.dumps({"arg": {"channel": "trades"}, "data": [obj]}),
                  json.dumps({"arg": {"channel": "liquidation-orders"}, "data": [
                      {"instId": "BTC-USDT-SWAP", "details": [obj]}]})):
        parse_message(frame, ins, c)
    assert c["frames"] == 3


# ---------------------------------------------------------------------------- REST


def test_envelope_codes():
    assert unwrap({"code": "0", "msg": "", "data": [1]}) == [1]
    with pytest.raises(OkxApiError, match="51001") as e:
        unwrap({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
    assert e.value.code == "51001"
    for bad in ([], {"data": []}, {"code": "0", "data": {}}):
        with pytest.raises(ValueError):
            unwrap(bad)


def test_candles_and_oi_history_come_newest_first():
    data = [["1700000120000", "3", "3", "3", "3", "200", "2", "6", "0"],
            ["1700000060000", "2", "2", "2", "2", "100", "1", "2", "1"],
            ["1700000000000", "1", "1", "1", "1", "50", "", "0.5", "1"]]
    rows = parse_candles(data, 0.01)
    assert [r[0] for r in rows] == [1700000000000, 1700000060000, 1700000120000]
    assert rows[0][5] == 0.5 and rows[1][5] == 1.0  # volCcy, or contracts × ctVal
    assert [r[7] for r in rows] == [True, True, False]
    assert parse_mark_candles([["1700000060000", "2", "3", "1", "2.5", "0"],
                               ["1700000000000", "1", "2", "0.5", "2", "1"]]) == [
        (1700000000000, 1.0, 2.0, 0.5, 2.0), (1700000060000, 2.0, 3.0, 1.0, 2.5)]
    oi = parse_oi_history([["1700000300000", "100", "1.0", "95000"],
                           ["1700000000000", "90", "0.9", "85000"]])
    assert oi == [(1700000000000, 0.9), (1700000300000, 1.0)]
    with pytest.raises(ValueError):
        parse_candles([["1", "2"]], 1.0)
