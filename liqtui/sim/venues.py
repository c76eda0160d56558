"""One simulated market seen through several venues.

Traders compare venues, so the simulator serves the *same* traders' market over Binance,
Bybit and OKX protocols, each venue with its own share of the volume and open interest and its
own basis (a constant price premium over the Binance price). A ``VenueMarket`` answers the
``Market`` queries the protocol servers need, shaped for its venue; ``view_event`` shapes the
live events of ``Market.advance()`` the same way. The shapes come from the registry
(``liqtui.feeds.venues``); a venue whose shape is the identity (Binance) talks to the bare
``Market``.

Consistency the tests rely on: a model run on any venue sees the same price path (times
``1 + basis``) and the same relative open-interest changes (times ``oi_share``), so after
basis mapping its levels sit at the same prices, with USD scaled by the venue's share.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..feeds.venues import VENUES


@dataclass(frozen=True)
class VenueShape:
    name: str
    basis: float = 0.0         # price premium over the underlying market (fraction)
    volume_share: float = 1.0  # share of the traded volume
    oi_share: float = 1.0      # share of the open interest

    @property
    def k(self) -> float:
        return 1.0 + self.basis


    @property
    def identity(self) -> bool:
        return self.basis == 0.0 and self.volume_share == 1.0 and self.oi_share == 1.0


#: each venue's shape, as the registry declares it
SHAPES = {v.name: VenueShape(v.name, v.basis, v.volume_share, v.oi_share)
          for v in VENUES.values()}


class VenueMarket:
    """The ``Market`` as one venue shows it (prices × k, volumes and OI × shares).

    Kline rows are ``[open_ms, o, h, l, c, volume, close_ms, quote_volume, trades,
    taker_base, taker_quote]`` (floats), as ``Market.klines`` returns them.
    """

    def __init__(self, market, shape: VenueShape | str):
        self.market = market
        self.shape = SHAPES[shape] if isinstance(shape, str) else shape

    # the clock, symbols and everything not reshaped pass straight through
    def __getattr__(self, name):
        return getattr(self.market, name)

    def _row(self, r: list) -> list:
        k, v = self.shape.k, self.shape.volume_share
        return [r[0], r[1] * k, r[2] * k, r[3] * k, r[4] * k, r[5] * v, r[6], r[7] * v * k,
                max(0, round(r[8] * v)) if r[8] else r[8], r[9] * v, r[10] * v * k]

    def klines(self, symbol, interval_ms, start_ms=None, end_ms=None, limit=500) -> list:
        return [self._row(r) for r in self.market.klines(symbol, interval_ms, start_ms,
                                                         end_ms, limit)]

    def mark_klines(self, symbol, interval_ms, start_ms=None, end_ms=None, limit=500) -> list:
        return [self._row(r) for r in self.market.mark_klines(symbol, interval_ms, start_ms,
                                                              end_ms, limit)]

    def open_interest(self, symbol) -> tuple[float, int]:
        base, t = self.market.open_interest(symbol)
        return base * self.shape.oi_share, t

    def open_interest_hist(self, symbol, period_ms, start_ms=None, end_ms=None,
                           limit=30) -> list:
        s, k = self.shape.oi_share, self.shape.k
        return [(t, base * s, usd * s * k) for t, base, usd in
                self.market.open_interest_hist(symbol, period_ms, start_ms, end_ms, limit)]

    def mark_price(self, symbol) -> tuple[float, float, int]:
        mark, index, t = self.market.mark_price(symbol)
        return mark * self.shape.k, index * self.shape.k, t

    def ticker_24h(self, symbol) -> dict:
        d = dict(self.market.ticker_24h(symbol))
        k, v = self.shape.k, self.shape.volume_share
        for key in ("priceChange", "weightedAvgPrice", "lastPrice", "openPrice", "highPrice",
                    "lowPrice"):
            d[key] = d[key] * k
        d["volume"] *= v
        d["quoteVolume"] *= v * k
        d["lastQty"] *= v
        return d

    def view_event(self, ev: tuple) -> tuple:
        """A live event of ``Market.advance()`` as this venue shows it (same tuple layout)."""
        k, v = self.shape.k, self.shape.volume_share
        kind = ev[0]
        if kind == "trade":   # ("trade", sym, ms, agg_id, price, qty, taker_buy)
            return ev[:4] + (ev[4] * k, ev[5] * v) + ev[6:]
        if kind == "mark":    # ("mark", sym, ms, mark, index)
            return ev[:3] + (ev[3] * k, ev[4] * k) + ev[5:]
        if kind == "kline":   # ("kline", sym, ms, row, closed)
            return ev[:3] + (self._row(ev[3]),) + ev[4:]
        if kind == "liquidation":  # ("liquidation", sym, ms, side, qty, limit_px, avg_px)
            return ev[:4] + (ev[4] * v, ev[5] * k, ev[6] * k) + ev[7:]
        return ev


# ------------------------------------------------------------------------ protocol servers


def load_protocols(exchange, venues=None) -> dict:
    """venue name → its ``SimProtocol`` (the class the registry names) for ``venues``
    (default: every venue in the registry), in the registry's order, each given the market
    shaped for it (the bare market where the shape is the identity, as Binance's)."""
    names = list(VENUES) if venues is None else [str(v).lower() for v in venues]
    for name in names:
        if name not in VENUES:
            raise ValueError(f"unknown venue {name!r}; known: {', '.join(VENUES)}")
    out = {}
    for name in (n for n in VENUES if n in names):
        shape = SHAPES[name]
        market = exchange.market if shape.identity else VenueMarket(exchange.market, shape)
        out[name] = VENUES[name].sim_class()(exchange, market)
    return out
