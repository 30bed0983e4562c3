"""benchmarks/paper_tables.py: cells come from the eval.json files the index names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
