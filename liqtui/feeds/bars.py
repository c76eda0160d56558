"""Forming bars from live data: the provisional (newest) column's input.

Closed model steps come from REST (klines, mark klines, open-interest history) so that a
heatmap rebuilt after a gap equals the live one; this builder only keeps the *forming* bar of
each symbol at two sizes, the minute and the model step (5 min by default):

* every trade extends the current minute (high, low, close, volumes, taker-buy quote volume);
* a *closed* 1-minute kline from the venue replaces the trade-built minute it covers, so
  trades lost to a reconnect are corrected as soon as the venue closes that minute (a venue
  whose candles carry no taker-buy volume keeps the share its trades showed);
* the forming step bar is the aggregate of its minutes, computed on demand.

The trade path is a handful of float operations: it runs for every aggTrade.
"""

from __future__ import annotations

from .events import Bar

from ..units import MINUTE as MINUTE_MS  # also imported from here (replay)

# minute bar layout (a list, mutated in place): open, high, low, close, volume, quote, taker-buy quote
_O, _H, _L, _C, _V, _Q, _B = range(7)


class _Sym:
    __slots__ = ("minute", "cur", "step", "minutes", "venue")

    def __init__(self, venue: str):
        self.minute = -1   # open time of the current minute
        self.cur = None    # its bar
        self.step = -1     # open time of the current step
        self.minutes = {}  # minute open time -> bar, for the current step
        self.venue = venue


class BarBuilder:
    def __init__(self, step_ms: int = 300_000, reset_ms: int | None = None):
        """``reset_ms``: data this far behind a symbol's current minute is not late but a new
        timeline (the current one came from a bad frame a new socket accepted first): the
        symbol starts again from it, counted in ``resets``. None: never (replays)."""
        if step_ms % MINUTE_MS:
            raise ValueError(f"step_ms must be a whole number of minutes, got {step_ms}")
        self.step_ms = step_ms
        self.reset_ms = reset_ms
        self.late = 0  # trades or klines older than the current minute/step (ignored)
        self.resets = 0
        self._s: dict[str, _Sym] = {}

    def _restart(self, s: _Sym, t: int) -> bool:
        """Whether ``t``, behind the current minute, starts a new timeline (then ``s`` is
        emptied for it); else it is late, counted."""
        if self.reset_ms is not None and t < s.minute - self.reset_ms:
            s.minute, s.cur, s.step, s.minutes = -1, None, -1, {}
            self.resets += 1
            return True
        self.late += 1
        return False

    def _roll(self, s: _Sym, minute: int) -> None:
        step = minute - minute % self.step_ms
        if step != s.step:
            s.step = step
            s.minutes = {}
        s.minute = minute

    def trade(self, venue: str, symbol: str, t: int, price: float, qty: float,
              taker_buy: bool) -> None:
        s = self._s.get(symbol)
        if s is None:
            s = self._s[symbol] = _Sym(venue)
        minute = t - t % MINUTE_MS
        if minute != s.minute:
            if minute < s.minute and not self._restart(s, minute):
                return
            self._roll(s, minute)
            s.cur = s.minutes.get(minute)
            if s.cur is None:
                s.cur = s.minutes[minute] = [price, price, price, price, 0.0, 0.0, 0.0]
        b = s.cur
        if price > b[_H]:
            b[_H] = price
        elif price < b[_L]:
            b[_L] = price
        b[_C] = price
        b[_V] += qty
        quote = price * qty
        b[_Q] += quote
        if taker_buy:
            b[_B] += quote

    def kline(self, bar: Bar) -> None:
        """A closed 1-minute kline is the venue's truth for its minute."""
        if not bar.closed or bar.interval_ms != MINUTE_MS:
            return
        s = self._s.get(bar.symbol)
        if s is None:
            s = self._s[bar.symbol] = _Sym(bar.venue)
        step = bar.time - bar.time % self.step_ms
        if step < s.step and not self._restart(s, bar.time):
            return
        if step > s.step:
            self._roll(s, bar.time)
        row = [bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume,
               bar.taker_buy_quote_volume]
        if row[_B] != row[_B]:  # NaN: the venue's candles carry no taker-buy volume (Bybit,
            old = s.minutes.get(bar.time)  # OKX): keep the taker share its trades showed
            if old is not None and old[_Q] > 0 and old[_B] == old[_B]:
                row[_B] = old[_B] / old[_Q] * row[_Q]
        s.minutes[bar.time] = row
        if bar.time == s.minute:
            s.cur = row  # later trades of this minute (none, it is closed) would extend it

    def forming(self, symbol: str) -> Bar | None:
        """The forming step bar (None before the first trade or kline)."""
        s = self._s.get(symbol)
        if s is None or not s.minutes:
            return None
        rows = [s.minutes[k] for k in sorted(s.minutes)]
        quote = sum(r[_Q] for r in rows)
        # minutes without a taker-buy figure take the share of those with one (NaN if none)
        known = [r for r in rows if r[_B] == r[_B]]
        kq = sum(r[_Q] for r in known)
        taker = (sum(r[_B] for r in known) / kq * quote if kq > 0
                 else 0.0 if known and quote == 0 else float("nan"))
        return Bar(
            s.venue, symbol, s.step, self.step_ms, rows[0][_O],
            max(r[_H] for r in rows), min(r[_L] for r in rows), rows[-1][_C],
            sum(r[_V] for r in rows), quote, taker, False,
        )

    def minute(self, symbol: str) -> Bar | None:
        """The current minute as built so far."""
        s = self._s.get(symbol)
        if s is None or s.cur is None:
            return None
        b = s.cur
        return Bar(s.venue, symbol, s.minute, MINUTE_MS, *b, closed=False)
