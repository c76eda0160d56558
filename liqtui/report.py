"""Output of ``liqtui levels``: a JSON document (schema 1) or an aligned text table, and for
several venues summed, who holds what and who was left out."""

from __future__ import annotations

from decimal import Decimal

from .units import format_duration, usd, utc  # usd, utc: also imported from here

SCHEMA = 1
NOTE = "Estimates: where leveraged positions were likely opened (LQ-1), not known positions."
_RED, _GREEN, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[0m"


def price_decimals(bin_width: float) -> int:
    """Enough decimals to write a bin centre exactly (width/2), and at least 2."""
    return max(2, 1 - Decimal(repr(float(bin_width))).normalize().as_tuple().exponent)


def _enabled_tiers(hm) -> list[str]:
    return [lab for lab, on in zip(hm.tier_labels, hm.params.tier_mask) if on]


def _num(x, decimals: int) -> float:
    return round(float(x), decimals)  # float(): numpy scalars (float32) are not JSON numbers


def levels_document(hm, symbol: str, top: int, venues=("binance",)) -> dict:
    """The ``--json`` document. Numbers stay numbers, rounded to what is meaningful."""
    d = price_decimals(hm.bin_width)
    tiers = _enabled_tiers(hm)
    totals = hm.totals()
    return {
        "schema": SCHEMA,
        "symbol": symbol,
        "venues": list(venues),
        "price": _num(hm.reference_price, d),
        "as_of": int(hm.as_of),
        "lookback": {"start": int(hm.start), "end": int(hm.as_of)},
        "bin_width": float(hm.bin_width),
        "levels": [
            {
                "price": _num(lv.price, d),
                "side": lv.side,
                "usd": _num(lv.usd, 2),
                "distance_pct": _num(lv.distance_pct, 3),
                "cumulative_usd": _num(lv.cumulative_usd, 2),
                "tiers": {t: _num(lv.tiers.get(t, 0.0), 2) for t in tiers},
            }
            for lv in hm.levels(top)
        ],
        "totals": {k: _num(totals[k], 2) for k in ("long_usd", "short_usd")},
    }


def _model_options(p) -> str:
    """Options that differ from the defaults, so a table is never mistaken for the default model."""
    out = []
    if p.alpha != 1.0:
        out.append(f"alpha {p.alpha:g}")
    if p.entry_spread:
        out.append("entry spread")
    if p.both_sides:
        out.append("both sides")
    if p.half_life_ms:
        out.append(f"half-life {format_duration(p.half_life_ms)}")
    if p.seed:
        out.append("seeded")
    return ", ".join(out) or "defaults"


def _share(part: float, whole: float) -> str:
    if part <= 0 or whole <= 0:
        return "-"
    pct = 100 * part / whole
    return "<1%" if pct < 0.5 else f"{pct:.0f}%"


def levels_text(hm, symbol: str, top: int, threshold: float, color: bool = False) -> str:
    from .model import ColorScale

    p = hm.params
    d = price_decimals(hm.bin_width)
    tiers = _enabled_tiers(hm)
    filt = p.tier_filter if isinstance(p.tier_filter, str) else ",".join(f"{x:g}" for x in p.tier_filter)
    weights = "/".join(f"{w * 100:g}" for w in p.weights)
    scale = ColorScale(threshold)
    scale.rescale(hm.usd())  # the newest column, which is what the levels describe
    head = [
        f"{symbol} · Binance USDⓈ-M · price {hm.reference_price:,.{d}f} · as of {utc(hm.as_of)}",
        f"lookback {format_duration(hm.as_of - hm.start)} from {utc(hm.start)} · bin {hm.bin_width:g}"
        f" · tiers {filt} ({' '.join(tiers)}) · sides {p.side_filter}",
        f"model: weights {weights} %, {_model_options(p)} · full yellow {usd(scale.full_usd)} per bin"
        f" (θ {threshold:g})",
        NOTE,
        "",
    ]
    levels = hm.levels(top)
    if not levels:
        return "\n".join(head + ["No levels: the model holds no positions under these filters."]) + "\n"
    rows = [("#", "price", "side", "usd", "Δ%", "cumulative", *tiers)]
    for i, lv in enumerate(levels, 1):
        rows.append((
            str(i), f"{lv.price:,.{d}f}", lv.side.upper(), usd(lv.usd),
            f"{lv.distance_pct:+.2f}%", usd(lv.cumulative_usd),
            *(_share(lv.tiers.get(t, 0.0), lv.usd) for t in tiers),
        ))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(w) if k == 2 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))]
        if color and r[2] in ("LONG", "SHORT"):  # colour after padding keeps the columns aligned
            cells[2] = (_RED if r[2] == "LONG" else _GREEN) + cells[2] + _RESET
        lines.append("  ".join(cells).rstrip())
    t = hm.totals()
    lines += [
        "",
        "tier columns: share of each level's usd by leverage tier",
        f"resting under these filters: longs {usd(t['long_usd'])}, shorts {usd(t['short_usd'])}",
    ]
    return "\n".join(head + lines) + "\n"


# ---------------------------------------------------------------- several venues (--venue all)


def add_venues(doc: dict, hm, top: int) -> None:
    """Schema 1 for --venue all: the venues left out, and each level's USD by venue."""
    doc["dropped"] = [{"venue": v, "reason": r} for v, r in hm.dropped.items()]
    for row, lv in zip(doc["levels"], hm.levels(top)):
        row["by_venue"] = {v: round(x, 2) for v, x in hm.level_venues(lv).items()}
    by = hm.usd_by_venue().sum(axis=2)  # (V, 2)
    doc["totals"]["by_venue"] = {v: {"long_usd": round(float(by[i, 0]), 2),
                                     "short_usd": round(float(by[i, 1]), 2)}
                                 for i, v in enumerate(hm.venues)}


def venue_title(text: str, venues, summed: bool) -> str:
    """The table's first line names the venue(s) the levels come from ("Binance+Bybit+OKX"
    for a sum, even of one venue left)."""
    from .feeds.venues import VENUES

    if not summed and tuple(venues) == ("binance",):  # what the table says already
        return text
    name = ("+".join(VENUES[v].label for v in venues) if summed
            else f"{VENUES[venues[0]].label} {VENUES[venues[0]].market}")
    head, _, rest = text.partition("\n")
    return head.replace(" · Binance USDⓈ-M · ", f" · {name} · ", 1) + "\n" + rest


def venues_text(hm, top: int) -> str:
    """Each level's USD stacked by venue, and who was left out."""
    from .feeds.venues import VENUES

    d = price_decimals(hm.bin_width)
    rows = [("#", "price", *(VENUES[v].label for v in hm.venues))]
    for i, lv in enumerate(hm.levels(top), 1):
        split = hm.level_venues(lv)
        rows.append((str(i), f"{lv.price:,.{d}f}",
                     *(f"{usd(split[v])} {100 * split[v] / lv.usd:3.0f}%" for v in hm.venues)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["", "by venue: each level's USD per venue (prices mapped onto "
             f"{VENUES[hm.reference_venue].label}'s)"]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines += [f"left out: {VENUES[v].label}: {r}" for v, r in hm.dropped.items()]
    return "\n".join(lines) + "\n"
