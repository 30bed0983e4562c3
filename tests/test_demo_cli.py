"""The demo and the top-level CLI behaviour."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gnm import cli
from gnm.demo import run_demo


def test_demo_writes_previews(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setattr("gnm.demo.load_mnist", lambda *a, **k: fake_mnist)
    page = run_demo(tmp_path, size=64, n=4)
    assert page.read_text().count("<img") == 3
    grid = np.array(Image.open(tmp_path / "mnist4.png"))
    assert grid.shape == (2 * 66 + 2, 2 * 66 + 2)  # 2x2 tiles of 64 px with 2 px padding


def test_help_and_version(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "data" in out and "demo" in out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "0.1.0"


def test_data_mnist_missing_files_exit_code(tmp_path, capsys):
    rc = cli.main(["data", "mnist", "--data-dir", str(tmp_path), "--no-download"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "are missing from" in err and "by hand" in err
