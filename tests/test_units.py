"""liqtui.units: the one definition of a step, a day, and how USD, UTC times and durations are
written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from liqtui.units import (DAY, HOUR, MINUTE, STEP_MS, format_duration, hms, parse_duration, usd,
                          utc, utc_seconds)

T = 1_790_000_007_000  # 2026-09-21 14:13:27 UTC


def test_spans():
    assert (MINUTE, HOUR, DAY, STEP_MS) == (60_000, 3_600_000, 86_400_000, 300_000)


def test_times():
    assert utc(T) == "2026-09-21 14:13 UTC"
    assert utc(T, seconds=True) == utc_seconds(T) == "2026-09-21 14:13:27 UTC"
    assert hms(T) == "14:13:27"


@pytest.mark.parametrize("x, text", [(950, "$950"), (123_450, "$123.45K"), (12_345_678, "$12.35M"),
                                     (1.234e9, "$1.23B"), (-2_500, "$-2.50K")])
def test_usd(x, text):
    assert usd(x) == text


def test_durations():
    assert parse_duration("1h30m") == 90 * MINUTE and parse_duration("2d") == 2 * DAY
    assert format_duration(3 * DAY + 4 * HOUR + 5 * MINUTE) == "3d 4h"
    assert format_duration(45_000) == "45s" and format_duration(12) == "12ms"
    for bad in ("", "12x", "0m", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_the_copies_are_gone():
    """What other modules called these names is the same object as the units'."""
    from liqtui import config, report, store
    from liqtui.feeds import live, settings

    assert report.usd is usd and report.utc is utc and config.parse_duration is parse_duration
    assert store.STEP_MS == live.STEP_MS == STEP_MS and settings.DAY_MS == store.DAY_MS == DAY


def test_imports_nothing_heavy():
    code = ("import sys, liqtui.units\n"
            "print(sorted(m for m in ('numpy', 'textual', 'aiohttp') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "[]", r.stderr
