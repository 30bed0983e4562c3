"""benchmarks/paper_tables.py: cells come from the eval.json files the index names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import paper_tables as pt  # noqa: E402
from gnm.errors import GNMError  # noqa: E402


def _result(folder: Path, dataset: str, sacc: float, judge: int | None = 2) -> None:
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(json.dumps({
        "dataset": dataset, "image_size": 64, "sacc": sacc, "dsteps": 1234.4, "ll": 5000.6,
        "ap50": None, "ap": None, "probe": None,
        "details": {"sacc": {"ci95": [sacc - 0.02, sacc + 0.03], "judge_version": judge}}}))


def test_cells_come_from_the_named_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(pt, "RESULTS", tmp_path)
    _result(tmp_path / "v4", "mnist4", 0.125)
    _result(tmp_path / "v10", "mnist10", 0.5, judge=None)
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"rows": [{"row": "VAE", "mnist4": "v4", "mnist10": "v10"}]}))
    text = pt.render(pt.load_rows(index))
    assert ("| VAE, ours | 0.125 (0.10–0.15) | 1,234 | 5,001 | 0.500 (0.48–0.53)† | 1,234 | "
            "5,001 | — | — | — |") in text
    assert "| VAE, paper | 0.000 | 319 | 10,895 | 0.000 | 279 | 10,031 | — | — | — |" in text
    assert "| GENESIS, ours | — |" in text  # a paper row with nothing measured yet
    index.write_text(json.dumps({"rows": [{"row": "VAE", "label": "beta 1", "mnist4": "v4"}]}))
    assert "| VAE, ours, beta 1 | 0.125 (0.10–0.15) |" in pt.render(pt.load_rows(index))
    assert "| SPACE | MNIST-4 | — | — | — | 0.906 | 0.464 | 0.979 |" in text
    doc = tmp_path / "doc.md"
    doc.write_text(f"head\n{pt.START}\nold\n{pt.END}\ntail\n")
    pt.write(doc, text)
    assert doc.read_text() == f"head\n{pt.START}\n{text}{pt.END}\ntail\n"


def test_a_wrong_index_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(pt, "RESULTS", tmp_path)
    _result(tmp_path / "v4", "mnist4", 0.1)
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"rows": [{"row": "VAE", "mnist10": "v4"}]}))
    with pytest.raises(GNMError, match="measures dataset 'mnist4', but index.json puts it in "
                                       "the mnist10 column"):
        pt.load_rows(index)
    index.write_text(json.dumps({"rows": [{"row": "VAE", "mnist4": "nope"}]}))
    with pytest.raises(GNMError, match="nope/eval.json does not exist"):
        pt.load_rows(index)
    assert pt.main(["--index", str(tmp_path / "none.json")]) == 2


def test_compare_is_newcombes_interval_of_the_two_proportions():
    # Newcombe (1998), Table II, example (a): 56/70 vs 48/80 -> 0.2000, method 10: 0.0524 to 0.3339
    d, lo, hi = pt.compare({"sacc": 0.8, "n": 70}, {"sacc": 0.6, "n": 80})
    assert d == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=5e-5)
    assert hi == pytest.approx(0.3339, abs=5e-5)
    # both zero of 1,000: not a point, but about +-0.0038 (the Wilson upper end of 0/1000)
    d, lo, hi = pt.compare({"sacc": 0.0, "n": 1000}, {"sacc": 0.0, "n": 1000})
    assert d == 0 and hi == pytest.approx(0.003827, abs=1e-6) and lo == pytest.approx(-hi)


def test_ordering_follows_the_paper_and_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(pt, "RESULTS", tmp_path)
    for name, sacc in (("g", 0.9), ("c8", 0.88), ("c", 0.95), ("v", 0.0), ("ge", 0.0)):
        _result(tmp_path / name, "mnist4", sacc)
    for name in ("g", "c8", "c", "v", "ge"):
        doc = json.loads((tmp_path / name / "eval.json").read_text())
        doc["n"] = 1000
        (tmp_path / name / "eval.json").write_text(json.dumps(doc))
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"rows": [
        {"row": r, "mnist4": f} for r, f in (("GNM", "g"), ("ConvDRAW-8", "c8"),
                                             ("ConvDRAW", "c"), ("VAE", "v"))]}))
    lines = pt.ordering(pt.load_rows(index), "mnist4")
    # paper order GNM > ConvDRAW-8 > GENESIS > ConvDRAW > VAE; GENESIS not measured
    assert lines[0].startswith("- GNM (0.984) > ConvDRAW-8 (0.604) in the paper: ours 0.900 vs "
                               "0.880, difference +0.020")
    assert lines[0].endswith("not resolved (the interval contains 0).")
    assert lines[1].startswith("- ConvDRAW-8 (0.604) > ConvDRAW (0.048)")
    assert lines[1].endswith("reversed.")  # 0.88 vs 0.95 at n = 1000: -0.07 +- 0.025
    assert lines[2].endswith("holds.")  # ConvDRAW 0.95 > VAE 0.0
    assert lines[3] == "- not measured here: GENESIS."
    assert pt.ordering(pt.load_rows(index), "mnist10") == [
        "- not measured here: GNM, ConvDRAW-MLP, VAE, GENESIS, ConvDRAW-8, ConvDRAW."]


def test_paper_figures_draw_kept_weights_and_list_the_rest(tmp_path, monkeypatch):
    from gnm.demo import default_model_path
    from tests.conftest import load_benchmark

    pf = load_benchmark("paper_figures")
    monkeypatch.setattr(pf, "RESULTS", tmp_path)
    for folder, model in (("g", str(default_model_path())), ("v", "runs/gone")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "eval.json").write_text(json.dumps({"model": model}))
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"rows": [{"row": "GNM", "mnist4": "g"},
                                          {"row": "VAE", "mnist4": "v"}]}))
    summary = pf.figures(index, tmp_path / "img", n=3, rows=1)
    assert summary["mnist4"]["models"] == ["GNM"]
    assert summary["mnist4"]["skipped"] == ["VAE: its weights runs/gone are not kept"]
    assert summary["mnist10"] == {"models": [], "skipped": []}
    from PIL import Image

    pic = np.asarray(Image.open(summary["mnist4"]["samples"]))
    assert pic.shape[0] == 64 + 2 * 2 and pic.shape[1] == 120 + 3 * 66 + 2  # one row of 3
    assert Image.open(summary["mnist4"]["components"]).size[1] == 68  # one component row
