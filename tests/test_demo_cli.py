"""The demo (a pretrained model's report, and --train), its HTML report, and top-level CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

import gnm
from gnm import cli
from gnm.config import set_override
from gnm.demo import Stages, default_model_path, resolve_model, run_demo, training_facts
from gnm.errors import GNMError
from gnm.presets import get_preset
from gnm.train.checkpoint import export_weights, save_checkpoint
from gnm.viz import report
from tests.test_pipeline import TINY

PICTURES = ("judged_samples", "prior_samples", "decomposition", "reconstructions",
            "object_traversal_where", "object_traversal_what", "global_traversal",
            "resample_posterior", "resample_prior", "mnist4", "mnist10", "mnist4_10")
pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SECTIONS = ("Model", "Scene-structure accuracy", "Samples from the prior",
            "Decomposition into objects", "Traversals", "Resampling the structure",
            "The datasets", "Wall-clock of this demo")


@pytest.fixture
def fake_digits(monkeypatch, fake_mnist):
    monkeypatch.setattr("gnm.demo.load_mnist", lambda *a, **k: fake_mnist)
    monkeypatch.setattr("gnm.demo.mnist_on_disk", lambda *a, **k: True)


def tiny_config():
    """The mnist4-cpu preset shrunk to a 32-px GNM that runs in milliseconds."""
    cfg = get_preset("mnist4-cpu")
    for assignment in ["data.size=32", "train.progress=false", "train.tensorboard=false"] + [
            f"model.{k}={json.dumps(v)}" for k, v in TINY.items()]:
        set_override(cfg, assignment)
    return cfg


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A randomly initialised tiny GNM exported like a shipped model."""
    folder = tmp_path_factory.mktemp("model")
    cfg = tiny_config()
    torch.manual_seed(0)
    model = gnm.build_model(cfg)
    save_checkpoint(folder / "run", 7, model, None, cfg, elapsed=90.0)
    return export_weights(folder / "run", folder / "mnist4.safetensors")


def _check_page(page):
    html = page.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}" in html, title
    sources = re.findall(r"<img src='([^']+)'", html)
    assert set(sources) >= {f"{name}.png" for name in PICTURES}
    for src in sources:
        assert (page.parent / src).is_file(), src
    assert html.count("<figcaption>") == len(sources)  # every picture has its caption
    assert "http" not in html  # self-contained: nothing fetched from the network
    return html


# ---------------------------------------------------------------------------- the demo
def test_demo_of_a_tiny_model_writes_the_whole_report(tmp_path, tiny_weights, fake_digits,
                                                      capsys):
    page = run_demo(tmp_path / "demo", model=tiny_weights, n=20, size=32)
    html = _check_page(page)
    assert "S-Acc" in html and "95% confidence interval" in html
    assert "training steps</td><td>7</td>" in html and "1.5 min" in html
    out = capsys.readouterr().out
    assert [line[:5] for line in out.splitlines()[:7]] == [f"[{i}/7]" for i in range(1, 8)]
    assert "demo done in" in out
    numbers = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert numbers["metrics"]["n"] == 20 and 0 <= numbers["metrics"]["sacc"] <= 1
    assert numbers["model"]["parameters"] > 0 and numbers["total_seconds"] > 0
    assert set(numbers["metrics"]["reasons"]) >= {"ok", "wrong_count"}
    grid = Image.open(tmp_path / "demo" / "judged_samples.png")
    assert grid.size == (8 * 34 + 2, 3 * 34 + 2)  # 20 samples of 32 px, 8 per row


def test_demo_cli_and_its_errors(tmp_path, tiny_weights, fake_digits, capsys, monkeypatch):
    assert cli.main(["demo", "--model", str(tiny_weights), "--out", str(tmp_path / "d"),
                     "--n", "20", "--size", "32", "--threads", "1"]) == 0
    assert (tmp_path / "d" / "index.html").is_file()
    capsys.readouterr()
    missing = tmp_path / "nowhere" / "mnist4.safetensors"
    monkeypatch.setattr("gnm.demo.default_model_path", lambda: missing)
    assert cli.main(["demo", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "gnm demo --train" in err and "--model" in err
    assert cli.main(["demo", "--model", str(tmp_path / "x.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["demo", "--model", str(tiny_weights), "--n", "5"]) == 2
    assert "at least 20" in capsys.readouterr().err
    assert cli.main(["demo", "--train", "--model", str(tiny_weights)]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert cli.main(["demo", "--train", "--minutes", "0", "--out", str(tmp_path / "t")]) == 2
    assert "positive number of minutes" in capsys.readouterr().err


def test_default_model_path_and_training_facts(tiny_weights, tmp_path, monkeypatch):
    assert default_model_path() == (Path(gnm.__file__).resolve().parent / "assets" / "models"
                                    / "mnist4.safetensors")
    assert resolve_model(tiny_weights) == tiny_weights
    monkeypatch.setattr("gnm.demo.default_model_path", lambda: tmp_path / "none.safetensors")
    with pytest.raises(GNMError, match="none.safetensors is not in this install"):
        resolve_model(None)
    assert training_facts(tiny_weights) == {"steps": 7, "seconds": 90.0}
    assert training_facts(tiny_weights.parent / "run") == {"steps": 7, "seconds": 90.0}
    sidecar = tiny_weights.with_suffix(".json")
    copy = tmp_path / "alone.safetensors"
    copy.write_bytes(tiny_weights.read_bytes())  # no sidecar: the metadata alone suffices
    assert training_facts(copy) == {"steps": 7, "seconds": 90.0} and sidecar.exists()


def test_judged_grid_frames_each_sample_by_its_verdict(tmp_path):
    import numpy as np

    from gnm.demo import judged_grid

    images = np.zeros((3, 32, 32, 1), np.uint8)
    judged_grid(images, [{"ok": True}, {"ok": False}, {"ok": True}], tmp_path / "g.png")
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (36, 3 * 34 + 2, 3)
    corners = [tuple(grid[2 + 1, 2 + 34 * i + 1]) for i in range(3)]  # inner frame pixel
    assert corners == [(0, 255, 0), (255, 40, 40), (0, 255, 0)]
    assert tuple(grid[2 + 16, 2 + 16]) == (0, 0, 0)  # the image itself is untouched


def test_stages_print_one_line_each(capsys):
    stages = Stages(2)
    with stages("first"):
        pass
    with stages("second", talks=True):
        print("noise")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1/2] first ...") and lines[0].endswith(" s")
    assert lines[1:3] == ["[2/2] second ...", "noise"] and lines[3].endswith(" s")
    assert list(stages.seconds) == ["first", "second"]
    assert not Stages(1, quiet=True).seconds


# ---------------------------------------------------------------------------- --train
def test_demo_train_trains_then_reports(tmp_path, fake_digits, monkeypatch, capsys):
    import gnm.demo_train as demo_train

    monkeypatch.setattr(demo_train, "get_preset", lambda name: tiny_config())
    monkeypatch.setattr(demo_train, "TRAIN_SETTINGS", {
        **demo_train.TRAIN_SETTINGS, "batch_size": 4, "log_every": 2, "sample_every": 3,
        "judge_every": 4, "judge_n": 20})
    out = tmp_path / "dt"
    page = demo_train.run_demo_training(out, minutes=0.02, n=20, size=32)
    html = _check_page(page)
    assert "<h2>Training" in html and "learning_curves.png" in html
    assert "Prior samples after" in html  # the training-time grids
    records = [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("sacc" in r for r in records) and any("elbo" in r for r in records)
    assert (out / "model" / "mnist4.safetensors").is_file()
    assert json.loads((out / "run" / "config.json").read_text())["train"]["time_limit_s"] == 1.2
    assert "demo done in" in capsys.readouterr().out
    with pytest.raises(GNMError, match="already holds a training run"):
        demo_train.run_demo_training(out, minutes=0.02, n=20, size=32)


def test_demo_config_reads_the_preset():
    from gnm.demo_train import PRESET, TRAIN_SETTINGS, demo_config

    cfg = demo_config(2.5, seed=3)
    assert cfg.model == get_preset(PRESET).model  # model settings as the preset has them
    assert cfg.train.time_limit_s == 150.0 and cfg.train.seed == 3
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size) == ("adam", 3e-4, 16)
    assert cfg.train.judge_n == TRAIN_SETTINGS["judge_n"] and cfg.train.sample_every == 500
    for bad in (0, -1, float("inf")):
        with pytest.raises(GNMError, match="--minutes"):
            demo_config(bad)


# ---------------------------------------------------------------------------- report
def test_report_building_blocks(tmp_path):
    Image.new("L", (10, 6)).save(tmp_path / "p.png")
    fig = report.figure(tmp_path, "p.png", "a <b> & c", scale=3)
    assert "width='30'" in fig and "a &lt;b&gt; &amp; c" in fig and "<b>" not in fig
    assert report.table([("x", 1)], ("k", "v")) == (
        "<table><tr><th>k</th><th>v</th></tr><tr><td>x</td><td>1</td></tr></table>")
    sec = report.section("T", "<p>body</p>", intro="i<")
    assert sec.startswith("<section><h2>T</h2><p>i&lt;</p><p>body</p>")
    path = report.write_page(tmp_path / "r" / "index.html", "Title", [sec], "sub")
    html = path.read_text()
    assert html.startswith("<!doctype html>") and "<title>Title</title>" in html
    assert [p.name for p in path.parent.iterdir()] == ["index.html"]  # no temporary left


# ---------------------------------------------------------------------------- top level
def test_help_and_version(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "data" in out and "demo" in out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "0.1.0"


def test_python_dash_m_gnm_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gnm", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "0.1.0"
    bad = subprocess.run([sys.executable, "-m", "gnm", "train", "--preset", "nope", "--out",
                          "/nonexistent/x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown preset" in bad.stderr


def test_data_mnist_missing_files_exit_code(tmp_path, capsys):
    rc = cli.main(["data", "mnist", "--data-dir", str(tmp_path), "--no-download"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "are missing from" in err and "by hand" in err


def test_mnist_fetch_talks_on_its_own_line(tmp_path, monkeypatch, capsys, fake_mnist):
    """When MNIST must be fetched, the stage line ends before the fetch prints (not mid-line)."""
    from gnm.demo import load_mnist_stage

    def fetching(*a, **k):
        print("gnm: fetched 4 MNIST file(s)")
        return fake_mnist

    monkeypatch.setattr("gnm.demo.load_mnist", fetching)
    monkeypatch.setattr("gnm.demo.mnist_on_disk", lambda *a, **k: False)
    assert load_mnist_stage(Stages(1), str(tmp_path)) is fake_mnist
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[1/1] fetching and loading MNIST digits ..."
    assert lines[1] == "gnm: fetched 4 MNIST file(s)" and lines[2].endswith(" s")
    monkeypatch.setattr("gnm.demo.mnist_on_disk", lambda *a, **k: True)
    monkeypatch.setattr("gnm.demo.load_mnist", lambda *a, **k: fake_mnist)
    load_mnist_stage(Stages(1), str(tmp_path))
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_mnist_on_disk(tmp_path):
    from gnm.data.mnist import MNIST_FILES, mnist_on_disk

    assert not mnist_on_disk(tmp_path)
    (tmp_path / "mnist").mkdir()
    for name in list(MNIST_FILES)[:3]:
        (tmp_path / "mnist" / name).write_bytes(b"x")
    assert not mnist_on_disk(tmp_path)
    (tmp_path / "mnist" / list(MNIST_FILES)[3]).write_bytes(b"x")
    assert mnist_on_disk(tmp_path)


def test_model_table_explains_the_bundled_wall_clock(tiny_weights):
    from gnm.demo import describe_model, model_table
    from gnm.train.checkpoint import load_config, load_model

    bundled = default_model_path()
    info = describe_model(bundled, load_model(bundled), load_config(bundled))
    html = model_table(info)
    assert "165.8 min" in html and "96 min" in html and "runs/l56-s0" in html
    tiny = describe_model(tiny_weights, load_model(tiny_weights), load_config(tiny_weights))
    assert tiny["training_note"] is None and "96 min" not in model_table(tiny)


def test_demo_picks_a_bundled_model_by_dataset(tmp_path, tiny_weights, monkeypatch, capsys):
    import shutil

    from gnm.demo import bundled_datasets

    monkeypatch.setattr("gnm.demo.bundled_model_path",
                        lambda d="mnist4": tmp_path / f"{d}.safetensors")
    monkeypatch.setattr("gnm.demo.default_model_path", lambda: tmp_path / "mnist4.safetensors")
    shutil.copy(tiny_weights, tmp_path / "mnist4.safetensors")
    (tmp_path / "mnist4.gmm.safetensors").write_bytes(b"a density, not a model")
    assert bundled_datasets() == ["mnist4"]
    with pytest.raises(GNMError, match=r"no bundled model for --dataset 'mnist10' \(bundled: "
                                       r"mnist4\); pass a model of your own with --model"):
        resolve_model(None, "mnist10")
    shutil.copy(tiny_weights, tmp_path / "mnist10.safetensors")
    assert bundled_datasets() == ["mnist10", "mnist4"]
    assert resolve_model(None, "mnist10") == tmp_path / "mnist10.safetensors"
    assert resolve_model(None, "mnist4") == tmp_path / "mnist4.safetensors"
    with pytest.raises(GNMError, match="--model and --dataset exclude each other"):
        resolve_model(tiny_weights, "mnist10")
    assert cli.main(["demo", "--dataset", "mnist10", "--model", str(tiny_weights)]) == 2
    assert "--model and --dataset exclude each other" in capsys.readouterr().err
    assert cli.main(["demo", "--train", "--dataset", "mnist10"]) == 2
    assert "--dataset and --train exclude each other" in capsys.readouterr().err
