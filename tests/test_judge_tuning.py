"""benchmarks/judge_tuning.py: its offline sweep must agree with the judge itself.

The sweep summarises each cached scene once (with every threshold off) and then decides each
threshold setting with array comparisons; at any setting, that must give exactly the verdicts
:func:`gnm.eval.judge._decide` gives with those thresholds set.
"""

from __future__ import annotations

import numpy as np
import pytest

from gnm.eval import judge as J
from tests.conftest import load_benchmark

MIRROR4 = [(30.0, 40.0), (98.0, 40.0), (98.0, 88.0), (30.0, 88.0)]  # TL, TR, BR, BL


def _scenes(n: int, seed: int) -> list:
    """MNIST-4 scenes with classes 3, 4, 5, 6 made ambiguous at random: each object's mass
    is split between its class, a wrong digit and reject, so every rule has cases both ways."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = np.full((4, 11), 1e-4)
        for i, c in enumerate([3, 4, 5, 6]):
            own, other, rej = rng.dirichlet([2.0, 1.0, 1.0])
            p[i, c], p[i, (c + 3) % 10], p[i, 10] = own, other, rej
        out.append((MIRROR4, p / p.sum(1, keepdims=True)))
    return out


@pytest.mark.parametrize("plausible, reject_at, ratio, top", [
    (0.05, 0.6, 0.0, False), (0.2, 0.4, 0.0, False), (0.1, 0.7, 0.3, False),
    (0.02, 0.9, 0.0, True)])
def test_sweep_rates_equal_the_judges_own_verdicts(monkeypatch, plausible, reject_at, ratio,
                                                  top):
    tuning = load_benchmark("judge_tuning")
    scenes = _scenes(300, seed=1)
    summary = tuning.summarise({("mnist4", "real", 128): scenes})
    rate = tuning.pass_rate(summary[("mnist4", "real", 128)], plausible, reject_at, ratio, top)
    for name, value in (("PLAUSIBLE", plausible), ("REJECT_AT", reject_at),
                        ("LABEL_RATIO", ratio), ("REJECT_TOP", top)):
        monkeypatch.setattr(J, name, value)
    direct = np.mean([J._decide("mnist4", cents, p).ok for cents, p in scenes])
    assert 0.05 < direct < 0.95  # the scenes are not all one way
    assert rate == pytest.approx(direct, abs=1e-12)


def test_summarise_leaves_the_thresholds_as_they_were():
    tuning = load_benchmark("judge_tuning")
    before = J.PLAUSIBLE, J.REJECT_AT, J.LABEL_RATIO, J.REJECT_TOP
    tuning.summarise({("mnist4", "real", 128): _scenes(3, seed=0)})
    assert (J.PLAUSIBLE, J.REJECT_AT, J.LABEL_RATIO, J.REJECT_TOP) == before
