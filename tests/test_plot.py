"""PIL line charts (gnm.viz.plot), learning curves (gnm.viz.curves) and their benchmark script."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gnm.errors import GNMError
from gnm.viz.curves import curve, final_values, learning_curves, sacc_at
from gnm.viz.plot import (
    PALETTE,
    chart_frame,
    format_tick,
    labelled_rows,
    line_chart,
    nice_ticks,
    side_by_side,
)
from tests.conftest import load_benchmark

RECORDS = [  # two window records and two judge records, as the trainer writes them
    {"step": 50, "elapsed": 30.0, "elbo": 100.0, "num_objects": 3.0},
    {"step": 100, "elapsed": 60.0, "elbo": 200.0, "num_objects": 4.0},
    {"step": 100, "elapsed": 66.0, "sacc": 0.25, "sacc_lo": 0.1, "sacc_hi": 0.4, "judge_n": 20},
    {"step": 150, "elapsed": 120.0, "sacc": 0.5, "sacc_lo": 0.3, "sacc_hi": 0.7, "judge_n": 20},
]


def test_nice_ticks_and_labels():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.3, 9.7) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(1990, 2530) == [1800, 2000, 2200, 2400, 2600]
    assert nice_ticks(5, 5)[0] < 5 < nice_ticks(5, 5)[-1]  # a flat series still gets a range
    assert nice_ticks(1, 0) == nice_ticks(0, 1)
    with pytest.raises(GNMError, match="not finite"):
        nice_ticks(0, float("nan"))
    assert [format_tick(v) for v in (0, 0.25, 1500.0, 2.5e5)] == ["0", "0.25", "1500", "2.5e+05"]


def test_a_known_line_lands_where_the_frame_says(tmp_path):
    series = {"flat": ([0, 10], [0.5, 0.5]), "rise": ([0, 10], [0, 1])}
    img = line_chart(series, "t", "x", "y", path=tmp_path / "c.png", ylim=(0, 1))
    frame = chart_frame(series, ylim=(0, 1))
    assert frame.xlim == (0, 10) and frame.ylim == (0, 1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c.png")), img)
    assert img.shape == (400, 640, 3) and img.dtype == np.uint8
    # The flat series is a horizontal line in the first colour at y = 0.5 ...
    col, row = frame.px(2.5, 0.5)
    patch = img[int(row) - 1:int(row) + 2, int(col)]
    assert any(tuple(p) == PALETTE[0] for p in patch)
    # ... and the rising one passes through (7.5, 0.75) in the second colour.
    col, row = frame.px(7.5, 0.75)
    patch = img[int(row) - 1:int(row) + 2, int(col) - 1:int(col) + 2].reshape(-1, 3)
    assert any(tuple(p) == PALETTE[1] for p in patch)
    # Axes are black; far from any line the plot area is white or a light grid line.
    assert tuple(img[frame.bottom, (frame.left + frame.right) // 2]) == (0, 0, 0)
    col, row = frame.px(1.0, 0.9)
    assert img[int(row), int(col)].min() >= 200


def test_chart_skips_non_finite_points_and_handles_single_points_and_no_data():
    frame = chart_frame({"a": ([0, 1, 2], [1.0, float("nan"), 3.0])})
    assert frame.ylim[0] <= 1 and frame.ylim[1] >= 3
    one = line_chart({"one": ([2.0], [0.3])}, ylim=(0, 1))
    col, row = chart_frame({"one": ([2.0], [0.3])}, ylim=(0, 1)).px(2.0, 0.3)
    assert tuple(one[int(row), int(col)]) == PALETTE[0]  # a dot marks the single point
    empty = line_chart({"none": ([], [])}, title="nothing")
    assert empty.shape == (400, 640, 3)
    with pytest.raises(GNMError, match="x values"):
        line_chart({"bad": ([0, 1], [0])})
    with pytest.raises(GNMError, match="too small"):
        line_chart({"a": ([0], [0])}, size=(60, 60))


def test_side_by_side_pads_to_the_tallest():
    a, b = np.zeros((10, 4, 3), np.uint8), np.zeros((6, 5, 3), np.uint8)
    out = side_by_side([a, b], gap=2)
    assert out.shape == (10, 11, 3)
    assert out[:, 4:6].min() == 255 and out[6:, 6:].min() == 255 and out[:6, 6:].max() == 0
    with pytest.raises(GNMError):
        side_by_side([])


def test_labelled_rows_places_each_picture_right_of_its_label(tmp_path):
    a, b = np.zeros((10, 4, 3), np.uint8), np.full((6, 8, 3), 7, np.uint8)
    out = labelled_rows([("first", a), ("second", b)], label_width=60, gap=3,
                        path=tmp_path / "rows.png")
    assert out.shape == (19, 68, 3)
    assert out[:10, 60:64].max() == 0 and out[:10, 64:].min() == 255  # a, then white
    assert out[10:13, 60:].min() == 255  # the gap
    assert (out[13:19, 60:68] == 7).all()
    assert out[:, :60].min() < 128  # the labels are drawn in the left column
    assert (tmp_path / "rows.png").is_file()
    with pytest.raises(GNMError):
        labelled_rows([])


def test_curves_from_metrics_records(tmp_path):
    assert curve(RECORDS, "elbo") == ([0.5, 1.0], [100.0, 200.0])
    assert curve(RECORDS, "sacc") == ([1.1, 2.0], [0.25, 0.5])
    assert curve(RECORDS, "sacc", x="step") == ([100.0, 150.0], [0.25, 0.5])
    with pytest.raises(GNMError, match="unknown x axis"):
        curve(RECORDS, "sacc", x="hours")
    final = final_values(RECORDS)
    assert final == {"step": 150, "minutes": 2.0, "elbo": 200.0, "num_objects": 4.0,
                     "sacc": 0.5, "sacc_ci95": [0.3, 0.7]}
    img = learning_curves({"a": RECORDS, "b": RECORDS[:2]}, keys=("sacc", "elbo", "num_objects"),
                          path=tmp_path / "lc.png", panel_size=(300, 200))
    assert img.shape == (200, 3 * 300 + 2 * 8, 3) and (tmp_path / "lc.png").exists()
    with pytest.raises(GNMError, match="no learning-curve panel"):
        learning_curves({"a": RECORDS}, keys=("loss",))
    with pytest.raises(GNMError, match="at least one run"):
        learning_curves({})


def test_learning_curves_script(tmp_path, capsys):
    for name in ("run-a", "run-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in RECORDS))
    script = load_benchmark("learning_curves")
    out = tmp_path / "img" / "lc.png"
    assert script.main([str(tmp_path / "run-a"), str(tmp_path / "run-b"),
                        "--out", str(out)]) == 0
    text = capsys.readouterr().out
    report = json.loads(text[:text.index("\n| run")])
    assert report["final"]["run-a"]["sacc"] == 0.5 and out.exists()
    assert "| run-b | 150 | 2.0 | 200.0 | 4.00 | 0.500 | 0.300-0.700 |" in text
    assert Image.open(out).size[0] > Image.open(out).size[1]  # two panels side by side
    assert script.main([str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "metrics.jsonl is missing" in capsys.readouterr().err
    assert script.main([f"GNM-Gaussian={tmp_path / 'run-a'}", "--out", str(out)]) == 0
    assert "| GNM-Gaussian | 150 |" in capsys.readouterr().out
    assert script.main([str(tmp_path / "run-a"), "--keys", "elbo,num_objects,sacc,kl_global",
                        "--x", "step", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 3 * Image.open(out).size[1]  # four panels side by side
    assert script.main([str(tmp_path / "run-a"), "--keys", "loss", "--out", str(out)]) == 2
    assert "no learning-curve panel for loss" in capsys.readouterr().err


def test_sacc_at_takes_the_last_judgement_by_each_time():
    # judged at 1.1 and 2.0 minutes; the run reached 2.0 minutes
    got = sacc_at(RECORDS, [1.0, 1.5, 2.0, 3.0])
    assert got[0] is None  # reached, but nothing judged by then
    assert got[1] == {"minutes": 1.1, "step": 100, "sacc": 0.25, "sacc_ci95": [0.1, 0.4],
                      "judge_n": 20, "ended": False}
    assert got[2]["step"] == 150 and got[2]["sacc"] == 0.5
    assert got[3]["sacc"] == 0.5 and got[3]["ended"]  # the run stopped at 2 minutes: its last
    assert sacc_at([], [1.0]) == [None]
    tie = [{"step": 10, "elapsed": 60.0, "sacc": 0.1}, {"step": 20, "elapsed": 60.0, "sacc": 0.2}]
    assert sacc_at(tie, [1.0])[0]["sacc"] == 0.2  # equal times keep the records' order


def test_learning_curves_time_to_quality(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    script = load_benchmark("learning_curves")
    assert script.main([str(tmp_path / "run"), "--at", "1.5,3", "--out",
                        str(tmp_path / "lc.png")]) == 0
    text = capsys.readouterr().out
    report = json.loads(text[:text.index("\n| run")])
    assert report["sacc_at"]["minutes"] == [1.5, 3.0]
    assert report["sacc_at"]["runs"]["run"][0]["sacc"] == 0.25
    assert "| run | 0.250 (step 100, n 20) | 0.500 (step 150, n 20; the run's last, at 2 min) |" \
        in text
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "run"), "--at", "half an hour"])
