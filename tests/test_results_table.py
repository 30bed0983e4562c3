"""The README's results table is what benchmarks/results_table.py builds from docs/results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gnm.errors import GNMError
from tests.conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
rt = load_benchmark("results_table")


def test_readme_table_is_generated():
    readme = (ROOT / "README.md").read_text()
    assert rt.embedded(readme) == rt.build(), (
        "README's results table is stale: run python benchmarks/results_table.py --write README.md")


def _fake_results(tmp_path: Path) -> Path:
    run = tmp_path / "run-a"
    run.mkdir()
    ev = {"model": "runs/a", "dataset": "mnist10", "image_size": 64, "sacc": 0.9,
          "dsteps": 1000.4, "ll": 5230.6, "ap50": 0.91234, "ap": None, "probe": 0.95,
          "details": {"sacc": {"ci95": [0.88, 0.917], "judge_version": 2},
                      "dsteps": {"std": 49.6}}}
    (run / "eval.json").write_text(json.dumps(ev))
    (run / "metrics.jsonl").write_text(
        json.dumps({"step": 1000, "elapsed": 60.0}) + "\n"
        + json.dumps({"step": 2000, "elapsed": 600.0}) + "\n")
    index = {"rows": [
        {"dir": "run-a", "model": "GNM", "alone": True, "train": "gnm train A",
         "eval": "gnm eval A"},
        {"paper": True, "model": "GNM, paper", "dataset": "mnist4", "source": "Table 1",
         "values": {"sacc": 0.984, "dsteps": 3920}}]}
    (tmp_path / "headline.json").write_text(json.dumps(index))
    return tmp_path / "headline.json"


def test_build_reads_every_number_from_the_files(tmp_path):
    lines = rt.build(_fake_results(tmp_path)).splitlines()
    assert lines[0] == rt.HEADER and lines[1] == "|" + "---|" * 11
    assert lines[2] == ("| 1 | [GNM](docs/results/run-a/eval.md) | MNIST-10, 64 px | "
                        "2k steps, 10 min alone | **0.900** (0.880–0.917) | 1,000 ± 50 | "
                        "5,231 | 0.912 | — | 0.950 | v2 |")
    assert lines[3] == ("| | GNM, paper (Table 1) | MNIST-4, 128 px | ~1.1M steps, GPU | "
                        "0.984 | 3,920 | — | — | — | — | by hand |")
    assert lines[-1] == "1. `gnm train A` then `gnm eval A`"


def test_missing_result_and_markers_are_clear_errors(tmp_path):
    index = _fake_results(tmp_path)
    (tmp_path / "run-a" / "eval.json").unlink()
    with pytest.raises(GNMError, match="run-a"):
        rt.build(index)
    with pytest.raises(GNMError, match="markers"):
        rt.embedded("no table here")


def test_replace_then_check(tmp_path):
    index = _fake_results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{rt.START}\nold\n{rt.END}\n\nafter\n")
    argv = ["--index", str(index)]
    assert rt.main([*argv, "--check", str(readme)]) == 1
    assert rt.main([*argv, "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n") and text.endswith(f"{rt.END}\n\nafter\n")
    assert rt.embedded(text) == rt.build(index)
    assert rt.main([*argv, "--check", str(readme)]) == 0
