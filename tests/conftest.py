"""Shared fixtures: a generator of realistic Binance dump files (klines and metrics CSVs), the
simulated exchange on 127.0.0.1 and a client session to talk to it."""

from __future__ import annotations

import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from hypothesis import settings

# CI runs each submission once: the same examples every run, so a red CI is reproducible
# (locally hypothesis keeps exploring new ones)
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
    "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"
)
MIN = 60_000
DAY = 86_400_000
START = 1714521600000  # 2024-05-01 00:00 UTC


def market(start=START, n=3 * 288, interval=5 * MIN, seed=1, price=60_000.0, oi=80_000.0):
    """A BTC-like random walk: bars and open interest (base units) at each bar's close."""
    rng = np.random.default_rng(seed)
    k = interval / (5 * MIN)  # per-bar moves scale with the bar length
    close = price * np.exp(np.cumsum(rng.normal(0, 0.0015 * k**0.5, n)))
    open_ = np.r_[price, close[:-1]]
    wick = np.abs(rng.normal(0, 0.0008, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.gamma(2.0, 150.0, n)
    vwap = (high + low + close) / 3
    share = np.clip(0.5 + (close - open_) / open_ * 50 + rng.normal(0, 0.05, n), 0.05, 0.95)
    # OI grows on average, with noise; a few sharp drops like a liquidation cascade
    doi = rng.normal(8.0 * k, 60.0 * k**0.5, n)
    doi[rng.integers(0, n, max(1, int(n * k / 300)))] -= 1500
    return {
        "time": start + interval * np.arange(n, dtype=np.int64),
        "interval": interval,
        "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "quote_volume": volume * vwap,
        "taker_buy_volume": volume * share, "taker_buy_quote_volume": volume * vwap * share,
        "oi": np.maximum(oi + np.cumsum(doi), 1000.0),
    }


def kline_lines(m, header=True, micro=False, rows=None):
    idx = range(len(m["time"])) if rows is None else rows
    scale = 1000 if micro else 1
    out = [KLINE_HEADER] if header else []
    for i in idx:
        t = int(m["time"][i])
        out.append(
            f"{t * scale},{m['open'][i]:.2f},{m['high'][i]:.2f},{m['low'][i]:.2f},{m['close'][i]:.2f},"
            f"{m['volume'][i]:.3f},{(t + m['interval'] - 1) * scale},{m['quote_volume'][i]:.5f},"
            f"{int(m['volume'][i] * 10)},{m['taker_buy_volume'][i]:.3f},"
            f"{m['taker_buy_quote_volume'][i]:.5f},0"
        )
    return out


def metrics_lines(m, symbol="BTCUSDT", every=5 * MIN, rows=None, header=True):
    """One row per `every` at bar closes: the open interest at that instant."""
    out = [METRICS_HEADER] if header else []
    idx = range(len(m["time"])) if rows is None else rows
    for i in idx:
        t = int(m["time"][i]) + m["interval"]
        if t % every:
            continue
        stamp = datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        oi = m["oi"][i]
        out.append(f"{stamp},{symbol},{oi:.4f},{oi * m['close'][i]:.8f},1.71,1.62,1.55,0.98")
    return out


def write(path: Path, lines, as_zip=False) -> Path:
    text = "\n".join(lines) + "\n"
    if as_zip:
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(path.with_suffix(".csv").name, text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def dumps(tmp_path):
    """Write a market's klines and metrics as one file each; returns (klines, metrics, market)."""

    def make(days=3, interval=5 * MIN, seed=1, as_zip=False, **kw):
        m = market(n=days * DAY // interval, interval=interval, seed=seed, **kw)
        iv = f"{interval // MIN}m"
        k = write(tmp_path / f"BTCUSDT-{iv}-2024-05-01.csv", kline_lines(m), as_zip)
        x = write(tmp_path / "BTCUSDT-metrics-2024-05-01.csv", metrics_lines(m), as_zip)
        return k, x, m

    return make


@pytest.fixture(autouse=True, scope="session")
def _no_user_data_dir(tmp_path_factory):
    """The app keeps what it sees in the user's data directory (the store): never in tests
    (subprocesses inherit this; a test may set its own)."""
    import os

    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No LIQTUI_* variables, NO_COLOR or user config file from the developer's machine."""
    import os

    for k in list(os.environ):
        if k.startswith("LIQTUI_") or k == "NO_COLOR":
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


@pytest.fixture(scope="session", autouse=True)
def _sim_cache(tmp_path_factory):
    """One history cache for the session: ``helpers.fixed_market`` builds its history once."""
    import helpers

    helpers.CACHE[:] = [tmp_path_factory.mktemp("sim-cache")]
    yield
    helpers.CACHE.clear()


@pytest.fixture
async def exchange():
    """exchange(market, *args, **kw) → a started ``SimExchange`` on 127.0.0.1 (a free port);
    all of them are stopped after the test."""
    from liqtui.sim.server import SimExchange

    started = []

    async def start(market, *args, **kw):
        sx = SimExchange(market, *args, **kw)
        await sx.start()
        started.append(sx)
        return sx

    yield start
    for sx in started:
        await sx.stop()


@pytest.fixture
async def http():
    """An aiohttp client session, closed after the test."""
    async with aiohttp.ClientSession() as session:
        yield session
