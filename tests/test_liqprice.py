"""Liquidation price (Binance USDⓈ-M isolated, one-way, fees ignored) and the grid basics."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from liqtui.model import Grid, choose_bin_width, liquidation_price


def r2(x):
    return round(float(x), 2)


@pytest.mark.parametrize("L,long,short", [(10, 90_361.45, 109_561.75), (100, 99_397.59, 100_597.61)])
def test_model_vectors_at_100k(L, long, short):
    assert r2(liquidation_price(100_000.0, L, "long")) == long
    assert r2(liquidation_price(100_000.0, L, "short")) == short
    assert r2(liquidation_price(100_000.0, L, "long", mmr=0.004, cum=0.0)) == long
    assert r2(liquidation_price(100_000.0, L, "short", mmr=0.004, cum=0.0)) == short


def test_worked_example_1_btc_long_first_bracket():
    # "1 BTC long at 67,000, 10x, first bracket → 60,542.17"
    assert r2(liquidation_price(67_000.0, 10, "long")) == 60_542.17
    assert r2(liquidation_price(67_000.0, 10, "long", mmr=0.004, cum=0.0)) == 60_542.17
    assert r2(liquidation_price(67_000.0, 10, "long", mmr=0.004, cum=0.0,
                                notional=67_000.0)) == 60_542.17
    # by the bundled table a 67,000 notional is in [50,000, 250,000): m = 0.5 %, cum = 50,
    # which is not the "first bracket" of the worked example
    assert liquidation_price(67_000.0, 10, "long", notional=67_000.0) == pytest.approx(
        67_000.0 * (0.9 - 50 / 67_000.0) / 0.995, rel=1e-12)
    assert r2(liquidation_price(67_000.0, 10, "long", notional=67_000.0)) == 60_552.76


def test_worked_example_higher_bracket():
    # notional 900,000, m = 1 %, cum = 1,300, 10x long at 100,000 → 90,763.19
    explicit = liquidation_price(100_000.0, 10, "long", mmr=0.01, cum=1_300.0, notional=900_000.0)
    assert r2(explicit) == 90_763.19
    assert r2(liquidation_price(100_000.0, 10, "long", notional=900_000.0)) == 90_763.19
    # short mirror: E(1 + 1/L + cum/N)/(1 + m)
    assert liquidation_price(100_000.0, 10, "short", notional=900_000.0) == pytest.approx(
        100_000.0 * (1 + 0.1 + 1_300 / 900_000.0) / 1.01, rel=1e-12)


def test_brackets_are_half_open_at_the_floor():
    E, L = 100_000.0, 10
    at = liquidation_price(E, L, "long", notional=250_000.0)
    assert at == pytest.approx(E * (0.9 - 1_300 / 250_000.0) / (1 - 0.01), rel=1e-12)
    below = liquidation_price(E, L, "long", notional=249_999.99)
    assert below == pytest.approx(E * (0.9 - 50 / 249_999.99) / (1 - 0.005), rel=1e-12)
    assert liquidation_price(E, L, "long", notional=50_000.0) == pytest.approx(
        E * (0.9 - 50 / 50_000.0) / 0.995, rel=1e-12)
    assert liquidation_price(E, L, "long", notional=49_999.0) == pytest.approx(
        E * 0.9 / 0.996, rel=1e-12)


def test_bundled_bracket_table_is_consistent():
    raw = json.loads(resources.files("liqtui.model").joinpath("data/brackets.json").read_text())
    for sym, rows in raw["symbols"].items():
        assert rows[0]["floor"] == 0 and rows[0]["cum"] == 0, sym
        for a, b in zip(rows, rows[1:]):
            assert a["cap"] == b["floor"], sym
            assert b["mmr"] > a["mmr"], sym
            # cum_n = cum_{n−1} + floor_n·(m_n − m_{n−1})
            assert b["cum"] == pytest.approx(a["cum"] + b["floor"] * (b["mmr"] - a["mmr"]),
                                             abs=1e-6), (sym, b)


def test_array_inputs_broadcast_and_match_scalars():
    E = np.array([100_000.0, 67_000.0, 3_000.0, 0.25])
    L = np.array([10, 25, 50, 100])
    sides = np.array(["long", "short", "long", "short"])
    got = np.asarray(liquidation_price(E, L, sides))
    assert got.shape == (4,)
    want = [liquidation_price(float(e), int(lv), str(s)) for e, lv, s in zip(E, L, sides)]
    np.testing.assert_allclose(got, want, rtol=1e-15)
    got = np.asarray(liquidation_price(100_000.0, np.array([10, 100]), "long"))
    np.testing.assert_allclose(got, [100_000 * 0.9 / 0.996, 100_000 * 0.99 / 0.996], rtol=1e-15)
    got = np.asarray(liquidation_price(E, 10, "short", notional=E * 10))
    want = [liquidation_price(float(e), 10, "short", notional=float(e) * 10) for e in E]
    np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize("kwargs,word", [
    (dict(entry=100_000.0, leverage=10, side="up"), "side"),
    (dict(entry=100_000.0, leverage=0, side="long"), "leverage"),
    (dict(entry=100_000.0, leverage=-5, side="short"), "leverage"),
    (dict(entry=100_000.0, leverage=float("nan"), side="long"), "leverage"),
    (dict(entry=-1.0, leverage=10, side="long"), "entry"),
    (dict(entry=float("nan"), leverage=10, side="long"), "entry"),
])
def test_bad_inputs_raise_clear_value_errors(kwargs, word):
    with pytest.raises(ValueError) as e:
        liquidation_price(**kwargs)
    assert word in str(e.value).lower()


def test_bad_side_in_an_array_is_named():
    with pytest.raises(ValueError, match="side"):
        liquidation_price(np.array([1.0, 2.0]), 10, np.array(["long", "up"]))


def test_choose_bin_width_and_grid_basics():
    assert choose_bin_width(100_000.0) == 50.0  # 0.05 % of 100k
    assert choose_bin_width(67_000.0) == 50.0  # 33.5: nearer 50 than 20 in log
    assert choose_bin_width(3_000.0) == 2.0  # 1.5: nearer 2 than 1 in log
    assert choose_bin_width(0.1234) == 5e-05
    assert choose_bin_width(2.0, 0.01) == 0.01  # raised to the tick
    assert choose_bin_width(100_000.0, 0.1) == 50.0
    g = Grid.from_width(50.0)
    assert int(g.index(100_000.0)) == 2000
    assert int(g.index(100_049.99)) == 2000
    assert int(g.index(100_050.0)) == 2001
    assert float(g.centre(2000)) == 100_025.0
    for bad in (30.0, 0.0, -5.0):
        with pytest.raises(ValueError):
            Grid.from_width(bad)
