"""Summary statistics and intervals used by the metrics."""

from __future__ import annotations

import pytest

from gnm.eval.stats import mean_std, normal_ci, sem, wilson_interval


def test_mean_std_and_sem():
    assert mean_std([2.0, 4.0, 6.0]) == (4.0, 2.0)
    assert mean_std([5]) == (5.0, 0.0)
    assert sem([2.0, 4.0, 6.0]) == pytest.approx(2.0 / 3**0.5)
    with pytest.raises(ValueError):
        mean_std([])


def test_intervals():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert normal_ci(1.0, 0.5) == (pytest.approx(0.02, abs=1e-4), pytest.approx(1.98, abs=1e-4))
