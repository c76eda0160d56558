"""The provisional column equals the closed step's column once that step is complete."""

import numpy as np
import pytest

from liqtui.model import build_heatmap
from liqtui.model.live import provisional
from strategies import random_bars


def _last_bar(bars, i):
    keys = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_quote_volume",
            "mark_high", "mark_low")
    return {k: float(bars[k][i]) for k in keys if k in bars}


@pytest.mark.parametrize("seed,kw", [(1, {}), (2, {"tier_filter": "high"}), (3, {"side_filter": "short"}),
                                     (4, {"entry_spread": True}), (5, {"both_sides": True, "alpha": 0.4})])
def test_provisional_matches_the_rebuild(seed, kw):
    bars = random_bars(seed, n_steps=400, long_gaps=0, short_gaps=0, nan_oi_frac=0.0, nan_oi_runs=0,
                       bad_rows=0)
    head = {k: v[:-1] for k, v in bars.items()}
    before = build_heatmap(head, dtype=np.float64, **kw)
    full = build_heatmap(bars, dtype=np.float64, **kw)
    prov = provisional(before, _last_bar(bars, -1), float(bars["open_interest"][-1]))
    assert prov.net == pytest.approx(full.step_net[-1], rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(prov.consumed, full.consumed[-1], rtol=1e-9, atol=1e-9)
    # the two spans differ (the rebuild may add bins): compare where both have bins
    lo = max(before.bin_offset, full.bin_offset)
    hi = min(before.bin_offset + len(before.prices), full.bin_offset + len(full.prices))
    a = prov.column[lo - before.bin_offset: hi - before.bin_offset]
    b = full.columns[-1][lo - full.bin_offset: hi - full.bin_offset]
    scale = max(np.abs(full.columns[-1]).max(), 1e-300)
    assert np.abs(a - b).max() / scale <= 1e-9
    # what the rebuild holds outside the old span is what the provisional step left out
    out_usd = np.abs(full.columns[-1]).sum() - np.abs(b).sum()
    assert out_usd >= -1e-6 * scale
    if prov.outside == 0:
        assert out_usd <= 1e-9 * scale * len(full.prices)


def test_provisional_crash_consumes_and_nets():
    bars = random_bars(7, n_steps=300, long_gaps=0, short_gaps=0, nan_oi_frac=0.0, nan_oi_runs=0)
    hm = build_heatmap(bars, dtype=np.float64)
    price = hm.reference_price
    crash = {"open": price, "high": price, "low": price * 0.9, "close": price * 0.92,
             "volume": 10.0, "quote_volume": 10.0 * price * 0.95, "taker_buy_quote_volume": 0.0}
    hit = hm.prices >= price * 0.9
    first = provisional(hm, crash, hm.last_open_interest)
    assert first.consumed[0] == pytest.approx(hm.state[:, 0, hit].sum(), rel=1e-9)
    assert first.consumed[0] > 0
    # OI unchanged: the liquidations were replaced by new opens (n = consumed > 0)
    assert first.net == pytest.approx(first.consumed.sum())
    # OI fell by exactly what was liquidated: n = 0, nothing created or closed
    second = provisional(hm, crash, hm.last_open_interest - first.consumed.sum())
    assert second.net == pytest.approx(0.0, abs=1e-9 * first.consumed.sum())
    assert second.state[:, 0, hit].sum() <= 1e-9 * first.consumed.sum()
    np.testing.assert_allclose(second.state[:, 0, ~hit], hm.state[:, 0, ~hit], rtol=1e-9, atol=1e-12)
