"""Readers for Binance data dumps: formats, merging, gaps, the as-of open-interest join, errors."""

from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest
from conftest import (
    DAY, KLINE_HEADER, METRICS_HEADER, MIN, kline_lines, market, metrics_lines, write,
)

from liqtui.dumps import BAR_KEYS, DumpError, load_dumps

REAL_KLINE = (
    "1616338800000,57212.69,57315.00,57196.19,57300.00,496.263,1616339099999,28425514.78940,"
    "7160,273.108,15642623.69718,0"
)


def same_bars(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_arrays_have_exactly_the_model_keys_and_dtypes(dumps):
    k, x, m = dumps()
    d = load_dumps([k], [x])
    assert tuple(d.bars) == BAR_KEYS
    assert d.bars["time"].dtype == np.int64
    assert all(d.bars[c].dtype == np.float64 for c in BAR_KEYS[1:])
    assert d.symbol == "BTCUSDT" and d.interval_ms == 5 * MIN
    assert np.all(np.diff(d.bars["time"]) > 0)
    # 5m metrics stamped at every bar close: bar i carries the open interest at its own close
    np.testing.assert_allclose(d.bars["open_interest"], m["oi"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(d.bars["close"], m["close"], atol=0.006)


def test_real_example_row_parses_exactly(tmp_path):
    second = "1616339100000,57300.00,57350.10,57280.00,57321.11,301.5,1616339399999,17280000.5,5000,150.2,8600000.25,0"
    k = write(tmp_path / "BTCUSDT-5m-2021-03-21.csv", [REAL_KLINE, second])
    x = write(tmp_path / "BTCUSDT-metrics-2021-03-21.csv", [
        METRICS_HEADER,
        "2021-03-21 15:05:00,BTCUSDT,41234.567,2362000000.5,1.7,1.6,1.5,0.9",
        "2021-03-21 15:10:00,BTCUSDT,41300.000,2367000000.5,1.7,1.6,1.5,0.9",
    ])
    b = load_dumps([k], [x]).bars
    assert b["time"].tolist() == [1616338800000, 1616339100000]
    assert b["open"][0] == 57212.69 and b["high"][0] == 57315.0
    assert b["low"][0] == 57196.19 and b["close"][0] == 57300.0
    assert b["volume"][0] == 496.263
    assert b["quote_volume"][0] == 28425514.7894
    assert b["taker_buy_quote_volume"][0] == 15642623.69718
    assert b["open_interest"].tolist() == [41234.567, 41300.0]


def test_header_or_not_and_zip_read_the_same(tmp_path, dumps):
    k, x, m = dumps()
    ref = load_dumps([k], [x]).bars
    bare = write(tmp_path / "BTCUSDT-5m-bare.csv", kline_lines(m, header=False))
    same_bars(load_dumps([bare], [x]).bars, ref)
    kz = write(tmp_path / "BTCUSDT-5m-z.csv", kline_lines(m), as_zip=True)
    xz = write(tmp_path / "BTCUSDT-metrics-z.csv", metrics_lines(m), as_zip=True)
    assert kz.suffix == ".zip"
    same_bars(load_dumps([kz], [xz]).bars, ref)


def test_microsecond_timestamps(tmp_path, dumps):
    k, x, m = dumps()
    us = write(tmp_path / "BTCUSDT-5m-us.csv", kline_lines(m, micro=True))
    same_bars(load_dumps([us], [x]).bars, load_dumps([k], [x]).bars)


def test_metrics_without_ratio_columns_or_with_empty_ratios(tmp_path, dumps):
    k, x, m = dumps()
    full = metrics_lines(m)
    short = [",".join(r.split(",")[:4]) for r in full]
    empty = [full[0]] + [",".join(r.split(",")[:4]) + ",,,," for r in full[1:]]
    ref = load_dumps([k], [x]).bars
    for rows in (short, empty):
        p = write(tmp_path / "BTCUSDT-metrics-x.csv", rows)
        same_bars(load_dumps([k], [p]).bars, ref)


def test_overlapping_files_merge_in_time_order(tmp_path, dumps):
    k, x, m = dumps()
    ref = load_dumps([k], [x])
    n = len(m["time"])
    # day files overlapping by 100 bars, given out of order
    a = write(tmp_path / "BTCUSDT-5m-a.csv", kline_lines(m, rows=range(0, 500)))
    b = write(tmp_path / "BTCUSDT-5m-b.csv", kline_lines(m, rows=range(400, n)))
    xa = write(tmp_path / "BTCUSDT-metrics-a.csv", metrics_lines(m, rows=range(0, 600)))
    xb = write(tmp_path / "BTCUSDT-metrics-b.csv", metrics_lines(m, rows=range(300, n)))
    got = load_dumps([b, a], [xb, xa])
    same_bars(got.bars, ref.bars)
    assert got.warnings == ref.warnings == []


def test_conflicting_duplicates_keep_the_later_file_and_are_counted(tmp_path, dumps):
    k, x, m = dumps()
    lines = kline_lines(m, header=False, rows=range(10, 13))
    changed = [",".join(f if j != 4 else "99999.00" for j, f in enumerate(r.split(","))) for r in lines]
    patch = write(tmp_path / "BTCUSDT-5m-patch.csv", changed)
    d = load_dumps([k, patch], [x])
    assert d.bars["close"][10:13].tolist() == [99999.0] * 3
    assert any("3 bars appear more than once with different values" in w for w in d.warnings)
    d = load_dumps([patch, k], [x])  # now the original file is the later one
    assert d.bars["close"][10] != 99999.0


def test_maintenance_gap_is_bridged_and_named(tmp_path, dumps):
    k, x, m = dumps()
    n = len(m["time"])
    rows = [*range(0, 100), *range(124, n)]  # 2 hours missing from 08:20 UTC
    gap = write(tmp_path / "BTCUSDT-5m-gap.csv", kline_lines(m, rows=rows))
    d = load_dumps([gap], [x])
    assert len(d.bars["time"]) == n - 24
    assert d.interval_ms == 5 * MIN
    (w,) = [w for w in d.warnings if "gap" in w]
    assert "2024-05-01 08:20 UTC to 2024-05-01 10:20 UTC (2h, 24 bars missing" in w


def test_many_gaps_are_summarised(tmp_path, dumps):
    k, x, m = dumps()
    rows = [i for i in range(len(m["time"])) if i % 50 != 25]
    d = load_dumps([write(tmp_path / "BTCUSDT-5m-holes.csv", kline_lines(m, rows=rows))], [x])
    gaps = [w for w in d.warnings if "gap" in w]
    assert len(gaps) == 6 and gaps[-1].startswith("and 12 more kline gaps")


def test_open_interest_is_joined_as_of_the_bar_close(tmp_path):
    # 1m bars, metrics every 5 minutes: bar t carries the latest snapshot stamped <= t + 1m
    m = market(n=DAY // MIN, interval=MIN)
    k = write(tmp_path / "BTCUSDT-1m-2024-05-01.csv", kline_lines(m))
    x = write(tmp_path / "BTCUSDT-metrics-2024-05-01.csv", metrics_lines(m, every=5 * MIN))
    d = load_dumps([k], [x])
    t, oi = d.bars["time"], d.bars["open_interest"]
    assert t[0] == m["time"][4]  # bars 00:00-00:03 close before the first snapshot (00:05)
    assert any("trimmed 4 bars before and 0 bars after" in w for w in d.warnings)
    stamp = (t + MIN) // (5 * MIN) * (5 * MIN)  # latest 5m stamp at or before each close
    src = (stamp - m["time"][0]) // MIN - 1  # the bar whose close is that stamp
    np.testing.assert_allclose(oi, m["oi"][src], atol=1e-4)


def test_stale_open_interest_becomes_nan(tmp_path, dumps):
    k, x, m = dumps()
    n = len(m["time"])
    rows = [*range(0, 200), *range(230, n)]  # metrics missing for 2.5 hours
    holey = write(tmp_path / "BTCUSDT-metrics-holey.csv", metrics_lines(m, rows=rows))
    d = load_dumps([k], [holey])
    oi = d.bars["open_interest"]
    # the bar closing 1h after the last snapshot is still known; later ones up to the next are not
    assert np.isfinite(oi[199 + 12]) and np.isnan(oi[199 + 13:230]).all()
    assert np.isfinite(np.delete(oi, np.s_[212:230])).all()
    assert any("open interest unknown for 18 bars" in w for w in d.warnings)


def test_bars_outside_the_metrics_are_trimmed(tmp_path, dumps):
    k, x, m = dumps()
    part = write(tmp_path / "BTCUSDT-metrics-part.csv", metrics_lines(m, rows=range(100, 700)))
    d = load_dumps([k], [part])
    assert d.bars["time"][0] == m["time"][100] and d.bars["time"][-1] == m["time"][699]
    assert any("trimmed 100 bars before and 164 bars after" in w for w in d.warnings)


def test_symbol_from_file_name_when_metrics_leave_it_empty(tmp_path):
    m = market(n=50)
    k = write(tmp_path / "ETHUSDT-5m-2024-05-01.csv", kline_lines(m))
    rows = [r.replace(",BTCUSDT,", ",,") for r in metrics_lines(m)]
    assert load_dumps([k], [write(tmp_path / "m.csv", rows)]).symbol == "ETHUSDT"


def error(klines, metrics) -> str:
    with pytest.raises(DumpError) as e:
        load_dumps(klines, metrics)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_field_message_names_file_line_field_and_expectation(tmp_path, dumps):
    k, x, m = dumps()
    lines = kline_lines(m, header=False, rows=range(20))
    lines[6] = lines[6].split(",", 3)
    lines[6] = ",".join([*lines[6][:2], "abc", lines[6][3]])
    bad = write(tmp_path / "BTCUSDT-5m-2024-05-01.csv", lines)
    assert error([bad], [x]) == (
        f"{bad} line 7: field 3 (high) is 'abc', expected a number"
    )


@pytest.mark.parametrize("case, expect", [
    ("missing", "no such file"),
    ("empty", "file is empty"),
    ("header only", "header but no rows"),
    ("columns", "line 4: 11 fields, expected 12"),
    ("negative price", "line 3: field 5 (close) is '-1', expected a positive number"),
    ("nan volume", "line 2: field 6 (volume) is 'nan', expected a number ≥ 0"),
    ("not a zip", "not a readable zip archive"),
    ("zip without csv", "expected a zip holding one .csv file, found none"),
    ("binary", "line 1: not text"),
    ("mixed intervals", "is off the 5m grid"),
    ("one bar", "only one bar"),
    ("garbage first line", "line 1: 'hello,world' is neither a header nor a data row"),
])
def test_bad_kline_files(tmp_path, dumps, case, expect):
    k, x, m = dumps()
    good = kline_lines(m, rows=range(10))
    p = tmp_path / "BTCUSDT-5m-bad.csv"
    if case == "empty":
        p.write_text("")
    elif case == "header only":
        write(p, [KLINE_HEADER])
    elif case == "columns":
        good[3] = good[3].rsplit(",", 1)[0]
        write(p, good)
    elif case == "negative price":
        f = good[2].split(",")
        f[4] = "-1"
        write(p, [*good[:2], ",".join(f), *good[3:]])
    elif case == "nan volume":
        f = good[1].split(",")
        f[5] = "nan"
        write(p, [good[0], ",".join(f), *good[2:]])
    elif case == "not a zip":
        p = tmp_path / "BTCUSDT-5m-bad.zip"
        p.write_bytes(b"PK\x03\x04 this is not really a zip")
    elif case == "zip without csv":
        p = tmp_path / "BTCUSDT-5m-bad.zip"
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "hello")
    elif case == "binary":
        p.write_bytes(b"\xff\xfe\x00\x01garbage")
    elif case == "mixed intervals":
        f = good[5].split(",")
        f[0] = str(int(f[0]) + 60_000)
        write(p, [*good[:5], ",".join(f), *good[6:]])
    elif case == "one bar":
        write(p, good[:2])
    elif case == "garbage first line":
        write(p, ["hello,world", *good[1:]])
    msg = error([p], [x])
    assert str(p) in msg and expect in msg


@pytest.mark.parametrize("case, expect", [
    ("no required column", "line 1: header has no column 'sum_open_interest'"),
    ("bad time", "line 3: field 1 (create_time) is '2024-05-01 25:00:00', expected a UTC time"),
    ("bad oi", "line 2: field 3 (sum_open_interest) is 'x', expected a number"),
    ("too few fields", "line 2: 3 fields, expected at least 4"),
    ("two symbols", "line 3: field 2 (symbol) is 'ETHUSDT', expected 'BTCUSDT'"),
])
def test_bad_metrics_files(tmp_path, dumps, case, expect):
    k, x, m = dumps()
    good = metrics_lines(m, rows=range(10))
    if case == "no required column":
        good[0] = good[0].replace("sum_open_interest,", "oi,", 1)
    elif case == "bad time":
        good[2] = "2024-05-01 25:00:00" + good[2][19:]
    elif case == "bad oi":
        f = good[1].split(",")
        f[2] = "x"
        good[1] = ",".join(f)
    elif case == "too few fields":
        good[1] = ",".join(good[1].split(",")[:3])
    elif case == "two symbols":
        good[2] = good[2].replace("BTCUSDT", "ETHUSDT")
    p = write(tmp_path / "BTCUSDT-metrics-bad.csv", good)
    msg = error([k], [p])
    assert str(p) in msg and expect in msg


def test_files_for_different_symbols_are_refused(tmp_path, dumps):
    k, x, m = dumps()
    eth = write(tmp_path / "ETHUSDT-5m-2024-05-01.csv", kline_lines(m))
    assert "klines for ETHUSDT" in error([eth], [x])


def test_klines_and_metrics_that_do_not_overlap(tmp_path, dumps):
    k, x, m = dumps()
    later = market(start=int(m["time"][-1]) + 10 * DAY, n=100)
    xl = write(tmp_path / "BTCUSDT-metrics-later.csv", metrics_lines(later))
    msg = error([k], [xl])
    assert "do not overlap in time" in msg and "2024-05-01 00:00 UTC" in msg


def test_thirty_days_of_one_minute_bars_is_quick(tmp_path):
    m = market(n=30 * DAY // MIN, interval=MIN)
    k = write(tmp_path / "BTCUSDT-1m-2024-05.csv", kline_lines(m))
    x = write(tmp_path / "BTCUSDT-metrics-2024-05.csv", metrics_lines(m))
    best = min(_timed(load_dumps, [k], [x]) for _ in range(3))
    assert best < 2.0  # ~0.12 s here; the bound only catches a per-field Python loop gone wild


def _timed(f, *a):
    t = time.perf_counter()
    f(*a)
    return time.perf_counter() - t


def test_a_timestamp_of_1e23_is_named_not_a_warning_and_garbage(tmp_path, dumps):
    """It overflowed the int64 cast (a RuntimeWarning and a negative time); now refused."""
    import warnings

    k, x, m = dumps()
    lines = kline_lines(m, header=False, rows=range(20))
    lines[4] = "1e23," + lines[4].split(",", 1)[1]
    bad = write(tmp_path / "BTCUSDT-5m-2024-05-01.csv", lines)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from a cast on the way
        msg = error([bad], [x])
    assert msg == f"{bad} line 5: field 1 (open_time) is '1e23', expected an integer epoch time in ms"
