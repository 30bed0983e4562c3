"""benchmarks/vs_reference.py: its gnm half, its summary arithmetic, its refusals; the
reference half runs only where GNM_REFERENCE_DIR names a checkout of JindongJiang/GNM."""

from __future__ import annotations

import os

import pytest

from tests.conftest import load_benchmark


def test_summary_medians_and_ratios_by_hand():
    vs = load_benchmark("vs_reference")

    def r(train, sample):
        return {"train_images_per_s": train, "sample_images_per_s": sample, "params": 1,
                "peak_rss_gib": 1.0}

    s = vs.summarise({"reference": [r(30, 100), r(40, 120)],
                      "reference-tuned": [r(60, 200), r(70, 260)],
                      "gnm-fp32": [r(100, 400), r(110, 500)], "gnm-bf16": [r(120, 380),
                                                                          r(130, 420)]})
    assert s["medians"]["reference"]["train_images_per_s"] == 35
    assert s["gnm_best"] == {"train_images_per_s": 125, "sample_images_per_s": 450}
    assert s["x_reference"]["train_images_per_s"] == pytest.approx(125 / 35)
    assert s["x_reference_tuned"]["sample_images_per_s"] == pytest.approx(450 / 230)
    assert "÷ reference-tuned" in vs.table(s)


def test_gnm_half_times_a_fresh_process():
    vs = load_benchmark("vs_reference")
    r = vs.run_variant("gnm-fp32", None, steps=1, warmup=0, batch=2, threads=1,
                       preset="mnist4-cpu")
    assert r["params"] == 2_811_156 and r["train_images_per_s"] > 0
    assert r["sample_images_per_s"] > 0 and 0 < r["peak_rss_gib"] < 8


def test_refuses_without_a_reference(tmp_path):
    vs = load_benchmark("vs_reference")
    with pytest.raises(SystemExit):
        vs.main(["--rounds", "1"])
    with pytest.raises(SystemExit):
        vs.main(["--reference", str(tmp_path)])  # no model.py there
    with pytest.raises(ValueError, match="unknown variant"):
        vs.run_variant("nope", None, 1, 0, 2, 1)


@pytest.mark.skipif(not os.environ.get("GNM_REFERENCE_DIR"),
                    reason="set GNM_REFERENCE_DIR to a checkout of JindongJiang/GNM")
def test_reference_half_builds_the_papers_mnist4_model():
    vs = load_benchmark("vs_reference")
    r = vs.run_variant("reference-tuned", os.environ["GNM_REFERENCE_DIR"], 1, 0, 2, 1)
    assert r["params"] == 2_930_708  # = gnm's mnist4 preset (tests/test_gnm.py)
    assert r["train_images_per_s"] > 0
