"""Summary statistics and intervals used by the metrics."""

from __future__ import annotations

import pytest

from gnm.eval.stats import mean_std, newcombe_difference, normal_ci, sem, wilson_interval


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


def test_newcombe_difference_against_the_published_example():
    # Newcombe (1998), Table II (b): 9/10 vs 3/10 -> 0.6, method 10 interval 0.1705 to 0.8090
    d, lo, hi = newcombe_difference(9, 10, 3, 10)
    assert d == pytest.approx(0.6)
    assert (lo, hi) == (pytest.approx(0.1705, abs=5e-5), pytest.approx(0.8090, abs=5e-5))
