"""The header line: what stays when the terminal is narrow."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from liqtui.ui.header import HeaderInfo, header_text  # noqa: E402


def full(**kw) -> HeaderInfo:
    h = dict(symbol="BTCUSDT", venue="Binance USD-M (simulated)", price=102_311.6, decimals=2,
             change=0.036, oi_usd=385.76e6, range_label="12h", state="LIVE", age_s=0.4,
             demo=True, legend_usd=4.12e6)
    h.update(kw)
    return HeaderInfo(**h)


def test_wide_header_has_everything():
    t = header_text(full(), 200).plain
    for part in ("BTCUSDT", "Binance USD-M", "102,311.60", "▲3.6%", "OI $385.76M", "12h",
                 "tiers: all", "DEMO", "LIVE", "0s", "▁▂▃▅▇ 0…$4.12M"):
        assert part in t, (part, t)


@pytest.mark.parametrize("info", [
    full(),
    full(tiers="high", sides="long", zoom=2.0),
    full(state="RECONNECTING", note="no data for 30 s; reconnecting in 2 s"),
    full(price=0.123456, decimals=6, paused=True, progress=(40, 100)),
])
def test_at_80_columns_the_legend_stays(info):
    """At 80×24 the header has 78 cells (padding): the legend with the USD of full yellow
    stays, with the asset, the price and the feed state; lower parts go first."""
    t = header_text(info, 78)
    assert t.cell_len <= 78, t.plain
    plain = t.plain
    assert "…" not in plain.replace("0…$", "")  # nothing cut off mid-way
    for part in ("BTCUSDT", "0…$4.12M", f"{info.price:,.{info.decimals}f}", info.state):
        assert part in plain, (part, plain)


def test_default_filters_go_before_the_range_and_set_filters_stay_longer():
    plain = header_text(full(), 78).plain
    assert "12h" in plain and "tiers: all" not in plain
    plain = header_text(full(tiers="high", sides="long"), 78).plain
    assert "high long" in plain and "12h" in plain
    assert "tiers: high" in header_text(full(tiers="high"), 200).plain
