"""gnm eval's up-front cost estimate: which stages run, and their seconds by hand."""

from __future__ import annotations

import pytest

from gnm.eval import run as eval_run
from gnm.eval.cost import QUICK, UNIT_SECONDS, fmt_seconds, plan, plan_lines


def test_quick_plan_skips_the_slow_metrics():
    stages = plan(list(QUICK), n=1000, size=64, ll_n=200, ll_k=100, dsteps_cap=5000)
    assert [s.key for s in stages] == ["samples", "sacc", "scenes", "decompose", "ap", "probe"]
    assert stages[1].seconds == pytest.approx(UNIT_SECONDS["sacc"] * 1000)
    assert sum(s.seconds for s in stages) < 60  # the default set is the quick one


def test_plan_seconds_by_hand():
    # ll alone needs test scenes, then ll_n * ll_k importance samples; 128 px costs 4x 64 px.
    stages = plan(["ll"], n=100, size=128, ll_n=20, ll_k=50, dsteps_cap=5000)
    assert [s.key for s in stages] == ["scenes", "ll"]
    assert stages[0].seconds == pytest.approx(UNIT_SECONDS["scenes"] * 100 * 4)
    assert stages[1].seconds == pytest.approx(UNIT_SECONDS["ll"] * 20 * 50 * 4)
    d = plan(["dsteps"], n=100, size=64, ll_n=20, ll_k=50, dsteps_cap=300)
    assert [s.key for s in d] == ["samples", "scenes", "dsteps"]
    assert d[-1].upper and d[-1].seconds == pytest.approx(UNIT_SECONDS["dsteps"] * 3 * 300)
    assert not plan([], 100, 64, 20, 50, 300)


def test_plan_lines_and_seconds_format():
    lines = plan_lines(plan(["sacc", "dsteps"], 1000, 64, 200, 100, 5000))
    assert lines[0].startswith("gnm eval: 4 stages, about ")
    assert lines[1].lstrip().startswith("[1/4] prior samples")
    assert "up to" in lines[4] and "dsteps" in lines[4] and "--dsteps-cap" in lines[-1]
    assert [fmt_seconds(s) for s in (0.25, 4.2, 95, 7300)] == ["0.2 s", "4 s", "1.6 min",
                                                               "2.0 h"]


def test_parse_metrics_sets():
    assert eval_run.parse_metrics("quick") == list(QUICK)
    assert eval_run.parse_metrics(" all ") == list(eval_run.METRICS)
    assert eval_run.parse_metrics("ll, sacc") == ["ll", "sacc"]
    with pytest.raises(Exception, match="quick"):
        eval_run.parse_metrics("fast")
