"""The inputs of a one-shot model run (``liqtui levels``), gathered headless: Binance dump
files, one venue's REST backfill, every venue's at once, or what the store holds. And the
brief check a view makes before it starts: does the venue list the symbol?

Nothing here prints: a failure is an ``InputError`` carrying its message lines and the exit
status a command line would give it; progress goes to a callback. Each gatherer returns what
``liqtui.model`` builds from: ``(bars, symbol, warnings, tick size or None)``, or for every
venue ``({venue: Backfill or None}, {venue: reason left out}, tick size of the first)``.
"""

from __future__ import annotations

from ..units import UI_RANGES
from ..units import STEP_MS


class InputError(Exception):
    """The inputs cannot be had. ``lines``: why (one message each); ``status``: 2 for what
    the user gave (a bad file, an unknown symbol, an empty store), 1 for a venue that failed."""

    def __init__(self, *lines: str, status: int = 2):
        super().__init__("; ".join(lines))
        self.lines, self.status = lines, status


def files_input(klines, metrics):
    """Binance's data dump files (klines and metrics)."""
    from ..dumps import DumpError, load_dumps

    try:
        data = load_dumps(klines, metrics)
    except DumpError as e:
        raise InputError(str(e)) from None
    return data.bars, data.symbol, list(data.warnings), None


def network_input(venue: str, rest_url: str, symbol: str, range_name: str, progress=None):
    """Backfill the lookback (``range_name``, e.g. 24h) over REST from one venue: closed
    5-minute steps."""
    from ..feeds import BannedError, UnknownSymbolError

    try:
        info, bf = fetch({venue: rest_url}, symbol, range_name, progress)[venue]
    except (UnknownSymbolError, ValueError) as e:  # unknown symbol, a malformed URL
        raise InputError(str(e)) from None
    except BannedError as e:
        raise InputError(str(e), status=1) from None
    except Exception as e:  # RestError, OSError, timeouts, a client missing from this build
        raise InputError(f"{venue} {failure(rest_url, e)}", status=1) from None
    if not len(bf["time"]):
        raise InputError(f"{info.symbol}: the venue returned no closed bars for the last {range_name}")
    return bf, info.symbol, list(bf.warnings), info.tick_size


def all_venues_input(rest_urls: dict, symbol: str, range_name: str, progress=None):
    """Backfill every venue in ``rest_urls`` (venue → REST base URL) at once; a venue that
    fails is left out, with its reason. InputError if none is left."""
    from ..feeds import UnknownSymbolError

    got = fetch(rest_urls, symbol, range_name, progress)
    bars, failed, tick = {}, {}, None
    for name, r in got.items():
        if isinstance(r, BaseException):
            bars[name], failed[name] = None, failure(rest_urls[name], r)
        elif not len(r[1]["time"]):
            bars[name], failed[name] = None, f"no closed bars for the last {range_name}"
        else:
            bars[name] = r[1]
            tick = tick or r[0].tick_size
    if not any(b is not None for b in bars.values()):
        unknown = [r for r in got.values() if isinstance(r, UnknownSymbolError)]
        if len(unknown) == len(got):
            raise InputError(f"{symbol}: no venue lists it ({'; '.join(map(str, unknown))})")
        raise InputError(*(f"{name} {why}" for name, why in failed.items()), status=1)
    return bars, failed, tick


def store_input(store, venue: str, symbol: str, range_name: str):
    """The lookback's closed steps from ``store`` (open, read-only), ending at the newest
    stored step."""
    from ..store import StoreError

    sym = symbol.upper()
    with store:
        try:
            last = store.last_step(venue, sym)
            if last is None:
                raise InputError(f"{venue} {sym}: nothing stored in {store.path}; record it "
                                 f"first: liqtui record --venue {venue} --symbols {sym}")
            end = last + STEP_MS
            bars = store.steps(venue, sym, end - UI_RANGES[range_name], end)
            tick = store.tick_size(venue, sym)
        except StoreError as e:  # damaged past its header: found only when read
            raise InputError(str(e)) from None
    warnings = []
    if store.skipped:
        warnings.append(f"{store.path}: {store.skipped} stored step(s) of {venue} {sym} skipped "
                        "(not finite, negative or implausible; written by an older liqtui)")
    if not len(bars["time"]):
        raise InputError(f"{venue} {sym}: no usable steps in {store.path} for the last "
                         f"{range_name}" + (f" ({warnings[0]})" if warnings else ""))
    return bars, sym, warnings, tick


def fetch(rest_urls: dict, symbol: str, range_name: str, progress=None) -> dict:
    """venue → (symbol info, Backfill) from each venue's REST at once; with one venue its
    error is raised, with several it is returned in its place. ``progress(done, total)``
    follows every venue on one count, and gets (None, None) at the end."""
    import asyncio

    from ..feeds.venues import VENUES

    done: dict[str, tuple] = {}

    def share(name):  # one progress line for every venue
        if progress is None:
            return None

        def step(d, total):
            done[name] = (d, total)
            progress(sum(x[0] for x in done.values()), sum(x[1] or 0 for x in done.values()))
        return step

    async def one(name, url):
        rest = VENUES[name].rest_class()(url)
        try:
            info = await rest.symbol(symbol)
            return info, await rest.backfill(info.symbol, lookback_ms=UI_RANGES[range_name],
                                             progress=share(name))
        finally:
            await rest.close()

    async def every():
        out = await asyncio.gather(*(one(n, u) for n, u in rest_urls.items()),
                                   return_exceptions=len(rest_urls) > 1)
        return dict(zip(rest_urls, out))

    try:
        return asyncio.run(every())
    finally:
        if progress is not None:
            progress(None, None)


def failure(url: str, e: BaseException) -> str:
    """One line saying why a venue gave nothing (to follow the venue's name)."""
    if isinstance(e, (ImportError, AttributeError)):
        return f"no client for this venue in this build ({e})"
    return f"REST at {url}: {e or type(e).__name__}"


def unknown_symbol(venue: str, rest_url: str, symbol: str, feed_settings) -> str | None:
    """Ask the venue once, briefly, whether it lists ``symbol``: the reason if it does not,
    else None. A venue that cannot be reached (or is slow, or limits us) is not a verdict:
    the view starts and shows the feed state."""
    import asyncio
    from dataclasses import replace

    from ..feeds import UnknownSymbolError
    from ..feeds.venues import VENUES

    quick = replace(feed_settings, rest_retries=0, rest_timeout_s=3.0)

    async def ask() -> None:
        async with VENUES[venue].rest_class()(rest_url, settings=quick) as rest:
            await rest.exchange_info(max_wait=1.0)
            await rest.symbol(symbol)

    try:
        asyncio.run(asyncio.wait_for(ask(), 5.0))
    except UnknownSymbolError as e:
        return str(e)
    except Exception:  # noqa: BLE001 - unreachable, 429, 5xx, timeout: the app says so itself
        return None
    return None
