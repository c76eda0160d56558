"""The venue table: names, base URLs (flag > env > default, validated) and lazy clients."""

from __future__ import annotations

import pytest

from liqtui.feeds.binance import BinanceLive, BinanceRest
from liqtui.feeds.live import LiveFeed
from liqtui.feeds.venues import VENUES, venue, venues


def test_names_and_choices():
    assert list(VENUES)[0] == "binance" and all(k == v.name for k, v in VENUES.items())
    assert venue(" Bybit ").name == "bybit"
    with pytest.raises(ValueError, match=f"unknown venue 'kraken'; expected one of {', '.join(VENUES)}$"):
        venue("kraken")
    assert venues("all") == list(VENUES.values())
    assert [v.name for v in venues("okx,binance")] == ["binance", "okx"]
    with pytest.raises(ValueError, match="no venue"):
        venues(" , ")


def test_urls_flag_over_env_over_default():
    okx = VENUES["okx"]
    assert okx.urls(env={}) == ("https://www.okx.com", "wss://ws.okx.com:8443")
    env = {"LIQTUI_OKX_REST_URL": "http://127.0.0.1:9/", "LIQTUI_OKX_WS_URL": "ws://127.0.0.1:9"}
    assert okx.urls(env=env) == ("http://127.0.0.1:9", "ws://127.0.0.1:9")
    assert okx.urls("https://proxy.example:8443", env=env)[0] == "https://proxy.example:8443"
    with pytest.raises(ValueError, match="LIQTUI_BYBIT_WS_URL 'http://x': expected ws/wss"):
        VENUES["bybit"].urls(env={"LIQTUI_BYBIT_WS_URL": "http://x"})
    with pytest.raises(ValueError, match="--rest-url"):
        VENUES["bybit"].urls("ftp://x", env={})


def test_binance_clients_load_lazily():
    b = VENUES["binance"]
    assert b.rest_class() is BinanceRest and b.live_class() is BinanceLive
    assert issubclass(BinanceLive, LiveFeed) and BinanceLive.VENUE == "binance"


def test_the_table_is_light_to_import():
    """The CLI lists the venues in --help: reading the table must not load aiohttp or numpy."""
    import subprocess
    import sys

    code = ("import sys, liqtui.feeds.venues as v; v.venues('all'); "
            "print(','.join(m for m in ('aiohttp', 'numpy', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
