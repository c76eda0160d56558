import numpy as np
import pytest

from liqtui.model import ColorScale


def test_scale_is_held_until_rescaled():
    c = ColorScale(threshold=0.5, curve="gamma", gamma=1.0)
    c.rescale(np.array([0.0, 100.0, 50.0]))
    assert c.full_usd == 50.0
    assert list(c.normalize(np.array([0.0, 25.0, 50.0, 400.0]))) == [0.0, 0.5, 1.0, 1.0]
    # a new maximum elsewhere does not move the scale until the caller rescales
    c.normalize(np.array([10_000.0]))
    assert c.full_usd == 50.0
    c.rescale(np.array([1000.0]))
    assert c.full_usd == 500.0


def test_zero_is_black_and_anything_else_is_not():
    c = ColorScale()
    c.rescale(np.array([1e9]))
    q = c.quantize(np.array([0.0, 1e-3, 5e8, 1e9]), levels=16)
    assert q[0] == 0 and q[1] >= 1 and q[-1] == 15 and q[1] <= q[2] <= q[3]


def test_curves_are_monotone_and_bounded():
    x = np.linspace(0, 2e6, 200)
    for curve in ("gamma", "log"):
        c = ColorScale(curve=curve)
        c.rescale(np.array([1e6]))
        v = c.normalize(x)
        assert v.min() == 0.0 and v.max() == 1.0 and np.all(np.diff(v) >= 0)


def test_empty_view_is_black():
    c = ColorScale()
    c.rescale(np.zeros(3))
    assert not c.normalize(np.array([0.0, 5.0])).any()


@pytest.mark.parametrize("kw", [{"threshold": 0}, {"threshold": 1.5}, {"curve": "cubic"}, {"gamma": -1}])
def test_bad_settings_are_named(kw):
    with pytest.raises(ValueError, match=next(iter(kw)) if "curve" not in kw else "curve"):
        ColorScale(**kw)
