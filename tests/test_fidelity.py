"""The fidelity report runs on a tiny case and returns sane numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liqtui.model import build_heatmap
from liqtui.sim import Market
from liqtui.sim.fidelity import (FIDELITY_NOW, bars_from_market, fidelity_report, format_fidelity,
                                 score)

MIN = 60_000


def test_bars_are_what_the_feed_would_backfill():
    m = Market(symbols=("ETHUSDT",), now_ms=FIDELITY_NOW, history_days=0.3, seed=2)
    m.set_now(FIDELITY_NOW)
    start = FIDELITY_NOW - 3 * 3_600_000
    bars = bars_from_market(m, "ETHUSDT", start, FIDELITY_NOW)
    t = bars["time"]
    assert t[0] == start and t[-1] == FIDELITY_NOW - 5 * MIN and np.all(np.diff(t) == 5 * MIN)
    oi = {T: b for T, b, _ in m.open_interest_hist("ETHUSDT", 5 * MIN, limit=100)}
    assert all(bars["open_interest"][i] == oi[int(x) + 5 * MIN] for i, x in enumerate(t))
    k = m.klines("ETHUSDT", 5 * MIN, start_ms=start, limit=36)
    assert bars["close"].tolist() == [r[4] for r in k]
    assert np.all(bars["mark_low"] <= bars["mark_high"])
    hm = build_heatmap(bars)
    assert hm.totals()["long_usd"] >= 0


def test_report_runs_and_numbers_are_sane():
    rows = fidelity_report(seeds=(1,), regimes=("calm", "volatile"), days=1)
    assert len(rows) == 2
    for r in rows:
        assert 0 <= r["share"] <= r["best"] <= 1 and 0 <= r["even"] <= r["best"]
        for key in ("long_ratio", "short_ratio"):
            assert math.isfinite(r[key]) and 0 < r[key] < 10
        assert r["true_long_usd"] > 0 and r["true_short_usd"] > 0
        assert len(r["levels"]) == 10 and r["bars"] == 288
    table = format_fidelity(rows)
    assert "calm" in table and "volatile" in table and "all" in table
    assert len(table.splitlines()) == 6


def test_score_on_a_perfect_and_an_empty_guess():
    class Fake:
        prices = np.array([99.5, 100.5, 101.5])

        def __init__(self, levels):
            self._levels = levels

        def levels(self, top):
            return [type("L", (), {"price": p}) for p in self._levels]

        def totals(self):
            return {"long_usd": 10.0, "short_usd": 0.0}

        def usd_tiers(self):
            return np.array([[[10.0, 0, 0], [0, 0, 0]]])

    truth = {"prices": [99.5, 100.5, 101.5], "long_usd": [10.0, 0, 0], "short_usd": [0, 0, 5.0],
             "bin_width": 1.0, "price": 100.0}
    s = score(truth, Fake([99.5, 101.5]))
    assert s["share"] == 1.0 and s["best"] == 1.0 and s["long_ratio"] == 1.0
    assert score(truth, Fake([])) ["share"] == 0.0
    assert score(truth, Fake([]))["short_ratio"] == pytest.approx(0.0)
