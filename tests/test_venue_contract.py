"""The venue contract, walked over the registry (``liqtui.feeds.venues.VENUES``): every venue
declared there is checked the same way, so a new venue gets these tests by its entry alone.

* what the entry names imports lazily and implements the interfaces (``feeds.contract``
  ``VenueRest`` / ``VenueLive``, ``sim.protocol.SimProtocol``), with its brackets and shape;
* its REST client backfills from the simulated exchange over real sockets on 127.0.0.1, and
  its live client follows it: closed steps join the backfill without a hole, and marks and
  (scripted) liquidations arrive as events;
* the real frames recorded from the venue (``tests/fixtures/real/<venue>/``) parse through its
  live client's parser with nothing malformed, and the symbols in them round-trip through the
  venue's symbol mapping (ours → the venue's, as the frame spells it → ours).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SCALE, STEP, SYMS, Feed, Scripted, fast, fixed_market, until

from liqtui.feeds.contract import VenueLive, VenueRest
from liqtui.feeds.events import FeedState, Liquidation, MarkPrice
from liqtui.feeds.venues import VENUES
from liqtui.sim.protocol import SimProtocol
from liqtui.sim.venues import SHAPES

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real"
NAMES = list(VENUES)


def recorded_frames(name: str) -> list[str]:
    """Every frame the venue sent in its recorded fixtures (not what the recorder sent)."""
    out = []
    for path in sorted((FIXTURES / name).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "raw" in rec and rec.get("kind") != "send":
                out.append(rec["raw"])
    return out


def liquidating(market) -> Scripted:
    """A real market plus scripted liquidations: a long and a short wiped out per symbol every
    simulated second, so every venue has some to push whatever the random market does."""
    return Scripted(market, lambda second: [
        e for sym in market.symbols
        for e in (("liquidation", sym, second + 100, "BUY", 1.0, 100.0, 101.0),
                  ("liquidation", sym, second + 200, "SELL", 2.0, 100.0, 99.0))])


@pytest.mark.parametrize("name", NAMES)
def test_the_entry_names_classes_that_implement_the_contract(name):
    v = VENUES[name]
    rest, live, sim = v.rest_class(), v.live_class(), v.sim_class()
    for cls, base in ((rest, VenueRest), (live, VenueLive), (sim, SimProtocol)):
        assert issubclass(cls, base) and not inspect.isabstract(cls), (cls, base)
    assert rest.VENUE == live.VENUE == name
    assert v.label and v.market and v.header.startswith(v.label)
    brackets = json.loads(v.brackets_text())
    assert brackets["default"] and "symbols" in brackets
    assert (SHAPES[name].basis, SHAPES[name].volume_share, SHAPES[name].oi_share) == (
        v.basis, v.volume_share, v.oi_share)
    assert 0 < v.volume_share <= 1 and 0 < v.oi_share <= 1
    assert (FIXTURES / name).is_dir(), f"no recorded real frames for {name}"


@pytest.mark.parametrize("name", NAMES)
async def test_backfills_from_and_follows_the_simulated_exchange(name, exchange):
    """At 300× a step closes every wall second: closed steps are certain, and so are marks
    (every simulated second) and the scripted liquidations."""
    v = VENUES[name]
    market = liquidating(fixed_market(time_scale=SCALE))
    sx = await exchange(market, venues=[name])
    async with v.rest_class()(sx.rest_url) as rest:
        info = await rest.symbol("btcusdt")
        assert info.symbol == "BTCUSDT" and info.tick_size > 0
        initial = await rest.backfill("BTCUSDT", lookback_ms=2 * 3_600_000)
    assert len(initial["time"]) >= 23 and np.all(np.diff(initial["time"]) == STEP)
    assert np.all(initial["close"] > 0) and np.all(np.isfinite(initial["open_interest"]))
    async with Feed(v.live_class(), sx, ("BTCUSDT",), settings=fast()) as f:
        f.live.steps_from("BTCUSDT", initial.end)
        await until(lambda: f.state is FeedState.LIVE and len(f.steps) >= 2
                    and f.of(MarkPrice, "BTCUSDT") and f.of(Liquidation, "BTCUSDT"),
                    timeout=30, what=f"{name}: LIVE, two closed steps, marks and liquidations")
        assert f.live.counters["malformed"] == 0
    got = np.concatenate([initial["time"], *(s["time"] for s in f.steps)])
    assert np.all(np.diff(got) == STEP), "the closed steps have a gap or a duplicate"
    assert all(e.venue == name for e in f.events)


@pytest.mark.parametrize("name", NAMES)
async def test_real_recorded_frames_parse_and_symbols_round_trip(name, exchange):
    v = VENUES[name]
    frames = recorded_frames(name)
    assert frames, f"no recorded frames for {name}"
    sx = await exchange(fixed_market(), venues=[name])
    live = v.live_class()(sx.ws_url, SYMS, rest_url=sx.rest_url, settings=fast())
    try:
        assert await live._load_symbols()   # what some venues need to parse (OKX: ctVal)
    finally:
        await live.rest.close()
    events = [e for raw in frames for e in live._parse(raw)]
    assert live.counters["malformed"] == 0
    symbols = {e.symbol for e in events if getattr(e, "symbol", "")}
    assert symbols, f"{name}: no event in the recorded frames"
    text = "\n".join(frames)
    for sym in symbols:
        theirs = v.venue_symbol(sym)
        assert f'"{theirs}"' in text, (sym, theirs)   # the venue's spelling, as recorded
        assert v.our_symbol(theirs) == sym
