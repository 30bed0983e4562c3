"""Small statistics helpers shared by the metrics: summaries over seeds and 95% intervals.

Everything here works on plain Python floats / sequences and returns plain floats, so the
results can go straight into ``eval.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Two-sided 95% quantile of the standard normal distribution.
Z95 = 1.959963984540054


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (``ddof=1``; 0.0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std needs at least one value")
    mean = math.fsum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def sem(values: Sequence[float]) -> float:
    """Standard error of the mean: sample std / sqrt(n) (0.0 for a single value)."""
    vals = list(values)
    _, std = mean_std(vals)
    return std / math.sqrt(len(vals))


def normal_ci(mean: float, std_error: float, z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval ``mean ± z·std_error`` (95% by default)."""
    return float(mean - z * std_error), float(mean + z * std_error)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Better behaved than ``p ± z·sqrt(p(1-p)/n)`` near 0 and 1 and for small ``n``; this is the
    interval to quote for accuracies such as S-Acc or the probe accuracy.
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie in [0, n={n}]")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)    # exact ends, no round-off
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def newcombe_difference(successes_a: int, n_a: int, successes_b: int, n_b: int,
                        z: float = Z95) -> tuple[float, float, float]:
    """Difference of two independent proportions ``p_a − p_b`` with Newcombe's hybrid score
    interval (his method 10, built from the two Wilson intervals; 95% by default):
    ``(d, lo, hi)`` with ``lo = d − sqrt((p_a − l_a)² + (u_b − p_b)²)`` and
    ``hi = d + sqrt((u_a − p_a)² + (p_b − l_b)²)``. Unlike the normal interval it does not
    shrink to a point when both proportions are 0 (or 1)."""
    pa, pb = successes_a / n_a, successes_b / n_b
    (la, ua), (lb, ub) = wilson_interval(successes_a, n_a, z), wilson_interval(successes_b, n_b, z)
    d = pa - pb
    return d, d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)
