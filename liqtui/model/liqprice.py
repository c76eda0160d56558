"""Binance USDⓈ-M isolated-margin liquidation price (one-way mode, fees ignored).

With maintenance rate m and maintenance amount cum of the position's bracket, notional
N = qty·E, isolated wallet balance N/L, a long is liquidated when its margin balance falls to
the maintenance margin: ``N/L + qty·(P − E) = qty·P·m − cum``, hence

    long:  P = E·(1 − 1/L − cum/N) / (1 − m)
    short: P = E·(1 + 1/L + cum/N) / (1 + m)

The bracket is chosen by the *position's* notional (half-open [floor, cap)), never by the
market's total open interest.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np


class _Default(float):
    """A float default we can tell apart from the same value passed explicitly."""


_DEFAULT_MMR = _Default(0.004)
_DEFAULT_CUM = _Default(0.0)


@lru_cache(maxsize=None)
def bracket_table(symbol: str | None = None) -> dict[str, np.ndarray]:
    """The bundled bracket table of ``symbol`` (or the default) as arrays."""
    raw = json.loads(resources.files(__package__).joinpath("data/brackets.json").read_text())
    rows = raw["symbols"].get((symbol or raw["default"]).upper())
    if rows is None:
        rows = raw["symbols"][raw["default"]]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in rows[0]}


def bracket_for(notional, symbol: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mmr, cum, max_leverage) of the half-open bracket [floor, cap) holding each notional."""
    table = bracket_table(symbol)
    n = np.asarray(notional, dtype=np.float64)
    if np.any(~np.isfinite(n)) or np.any(n < 0):
        raise ValueError(f"notional must be a finite number ≥ 0, got {notional!r}")
    i = np.searchsorted(table["floor"], n, side="right") - 1
    return table["mmr"][i], table["cum"][i], table["max_leverage"][i]


def _side_sign(side) -> np.ndarray:
    s = np.asarray(side)
    ok = np.isin(s, ("long", "short"))
    if not np.all(ok):
        bad = s[~ok].flat[0] if s.ndim else s.item()
        raise ValueError(f"side must be 'long' or 'short', got {bad!r}")
    return np.where(s == "long", -1.0, 1.0)


def liquidation_price(
    entry,
    leverage,
    side,
    mmr=_DEFAULT_MMR,
    cum=_DEFAULT_CUM,
    notional=None,
    symbol: str | None = None,
):
    """Liquidation price of an isolated position; scalars or numpy arrays (broadcast).

    ``side`` is ``"long"`` or ``"short"`` (or an array of them). Without ``notional`` the
    first bracket applies (m = 0.4 %, cum = 0). With ``notional`` the bracket (m, cum) comes
    from the bundled table unless ``mmr``/``cum`` are passed explicitly.
    """
    e = np.asarray(entry, dtype=np.float64)
    lev = np.asarray(leverage, dtype=np.float64)
    if np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"entry price must be a positive number, got {entry!r}")
    if np.any(~np.isfinite(lev)) or np.any(lev < 1):
        raise ValueError(f"leverage must be a number ≥ 1, got {leverage!r}")
    sign = _side_sign(side)
    m = np.asarray(mmr, dtype=np.float64)
    c = np.asarray(cum, dtype=np.float64)
    n = None
    if notional is not None:
        n = np.asarray(notional, dtype=np.float64)
        if np.any(n <= 0):
            raise ValueError(f"notional must be positive, got {notional!r}")
        t_m, t_c, _ = bracket_for(n, symbol)
        m = t_m if isinstance(mmr, _Default) else m
        c = t_c if isinstance(cum, _Default) else c
    if np.any(m < 0) or np.any(m >= 1):
        raise ValueError(f"maintenance margin rate must be in [0, 1), got {mmr!r}")
    cum_over_n = c / n if n is not None else np.where(c == 0, 0.0, np.nan)
    if n is None and np.any(c != 0):
        raise ValueError("a maintenance amount (cum) needs the position's notional")
    p = e * (1 + sign * (1 / lev + cum_over_n)) / (1 + sign * m)
    return float(p) if p.ndim == 0 else p
