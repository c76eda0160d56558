import numpy as np
import pytest

from liqtui.model import Grid, choose_bin_width
from liqtui.model.grid import coarser_width


@pytest.mark.parametrize("price,tick,width", [
    (100_000, None, 50.0),     # 0.05 % of 100k is exactly 50
    (97_512.3, 0.1, 50.0),
    (3_000, 0.01, 2.0),        # 1.5 is nearer 2 than 1 in log
    (150, 0.01, 0.1),          # 0.075 → 0.1 (log-nearer than 0.05)
    (0.00002, 1e-9, 1e-8),
    (150, 0.5, 0.5),           # never below the tick
    (150, 0.3, 0.5),           # the tick is not in the series: next one up
])
def test_bin_width_from_the_125_series(price, tick, width):
    assert choose_bin_width(price, tick) == pytest.approx(width, rel=1e-12)


def test_bin_width_rejects_nonsense():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="price"):
            choose_bin_width(bad)
    with pytest.raises(ValueError, match="1-2-5"):
        Grid.from_width(30)


def test_boundary_price_is_in_exactly_one_bin():
    g = Grid.from_width(50)
    assert g.index(100_000.0) == 2000           # the lower edge belongs to the bin
    assert g.index(99_999.99) == 1999
    assert g.index(100_049.99) == 2000
    # decimals that float division gets wrong: 0.3 / 0.1 = 2.9999999999999996
    g = Grid.from_width(0.1)
    assert int(g.index(0.3)) == 3
    assert int(g.index(np.array([0.7, 0.69999]))[0]) == 7
    assert list(g.index(np.array([0.1, 0.2, 0.3, 0.4]))) == [1, 2, 3, 4]


def test_centre_comparisons_are_exact():
    g = Grid.from_width(0.1)
    # centre of bin 2 is 0.25: a low of exactly 0.25 reaches it, 0.2500001 does not
    assert int(g.first_centre_at_or_above(0.25)) == 2
    assert int(g.first_centre_at_or_above(0.2500001)) == 3
    assert int(g.last_centre_at_or_below(0.25)) == 2
    assert int(g.last_centre_at_or_below(0.2499999)) == 1
    assert g.centre(2) == pytest.approx(0.25)


def test_split_between_the_two_nearest_centres():
    g = Grid.from_width(50)
    j, f = g.split(100_025.0)  # exactly the centre of bin 2000
    assert (int(j), float(f)) == (2000, 0.0)
    j, f = g.split(100_050.0)  # exactly between centres 2000 and 2001
    assert (int(j), float(f)) == (2000, 0.5)
    j, f = g.split(100_037.5)
    assert (int(j), float(f)) == (2000, 0.25)


def test_coarser_width_steps_through_the_series():
    assert [coarser_width(w) for w in (1, 2, 5, 0.05)] == pytest.approx([2, 5, 10, 0.1])
