"""Bad inputs fed through the ``gnm`` command: one sentence (``gnm: error: ...``), exit 2, and
nothing half-written.

Writes that fail are simulated where the machine cannot make them fail (tests may run as root,
where a read-only ``chmod`` does not stop writes, and no disk here is full): creating a file
under the output folder raises the errno a read-only folder or a full disk would raise.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import gnm
from gnm import cli
from gnm.testing import break_writes
from gnm.train.checkpoint import export_weights, save_checkpoint
from tests.conftest import load_benchmark
from tests.test_demo_cli import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random GNM as a run directory and as exported weights, plus 24 sampled images."""
    folder = tmp_path_factory.mktemp("tiny")
    cfg = tiny_config()
    torch.manual_seed(0)
    model = gnm.build_model(cfg)
    save_checkpoint(folder / "run", 2, model, None, cfg)
    weights = export_weights(folder / "run", folder / "mnist4.safetensors")
    images = (np.random.default_rng(0).random((24, 32, 32, 1)) * 255).astype(np.uint8)
    np.savez(folder / "images.npz", images=images)
    return {"run": folder / "run", "weights": weights, "images": folder / "images.npz"}


@pytest.fixture
def fake_digits(monkeypatch, fake_mnist):
    for where in ("gnm.data.mnist.load_mnist", "gnm.demo.load_mnist"):
        monkeypatch.setattr(where, lambda *a, **k: fake_mnist)
    monkeypatch.setattr("gnm.demo.mnist_on_disk", lambda *a, **k: True)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``gnm ARGV`` (the stdout is dropped)."""
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_sentence(err: str, *parts: str) -> str:
    """The error is one ``gnm: error:`` line (no traceback) that contains every ``part``."""
    lines = [x for x in err.strip().splitlines() if x.startswith("gnm: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


TRAIN = ["train", "--preset", "mnist4-cpu", "--set", "train.steps=1", "--set",
         "train.batch_size=2", "--set", "train.progress=false", "--set", "train.tensorboard=false",
         "--set", "train.sample_every=0", "--set", "data.size=32"] + [
    x for k, v in {"enc_filters": "[8,16,32]", "enc_kernels": "[4,4,4]",
                   "enc_strides": "[2,2,2]", "draw_steps": 1, "z_step_dim": 4,
                   "draw_hidden": 8, "draw_input": 4, "interaction_hidden": "[16]",
                   "gdec_hidden": "[16]", "struct_hidden": "[8]", "z_what_dim": 4,
                   "glimpse_filters": "[8]", "glimpse_kernels": "[1,3]",
                   "glimpse_upscales": "[4,2]"}.items()
    for x in ("--set", f"model.{k}={v}")]


def write_commands(tiny: dict, out: Path) -> dict[str, list]:
    """Every writing command with its output under ``out``."""
    return {
        "train": [*TRAIN, "--out", out / "run"],
        "sample": ["sample", tiny["run"], "--n", 2, "--out", out / "s.npz"],
        "eval": ["eval", tiny["run"], "--metrics", "sacc", "--n", 20, "--quiet", "--out",
                 out / "ev"],
        "export": ["export", tiny["run"], "--out", out / "w.safetensors"],
        "judge": ["judge", "--dataset", "mnist4", "--images", tiny["images"], "--quiet", "--json",
                  out / "j.json"],
        "show": ["show", tiny["run"], "--out", out / "pics"],
        "demo": ["demo", "--model", tiny["weights"], "--n", 20, "--size", 32, "--out",
                 out / "demo"],
        "data make": ["data", "make", "mnist4", "--n", 3, "--size", 32, "--quiet", "--out",
                      out / "scenes"],
    }


COMMANDS = ("train", "sample", "eval", "export", "judge", "show", "demo", "data make")


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_write_errors_are_one_sentence_and_leave_nothing(name, code, tiny, tmp_path, capsys,
                                                         monkeypatch, fake_digits):
    out = tmp_path / "out"
    out.mkdir()
    break_writes(monkeypatch.setattr, out, code)
    status, err = run_cli(write_commands(tiny, out)[name], capsys)
    what = {errno.ENOSPC: "no space left", errno.EROFS: "read-only"}[code]
    assert status == 2
    assert_one_sentence(err, str(out), what)
    assert files_under(out) == []  # no temporary, no half-written file


@pytest.mark.parametrize("name", ["sample", "export", "judge", "show", "data make"])
def test_read_only_output_folder(name, tiny, tmp_path, capsys, monkeypatch, fake_digits):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):  # root: chmod does not stop writes, so simulate it
            break_writes(monkeypatch.setattr, out, errno.EACCES)
        status, err = run_cli(write_commands(tiny, out)[name], capsys)
    finally:
        out.chmod(0o700)
    assert status == 2
    assert_one_sentence(err, str(out), "permission denied")
    assert files_under(out) == []


@pytest.mark.parametrize("name", COMMANDS)
def test_out_under_a_regular_file(name, tiny, tmp_path, capsys, fake_digits):
    blocker = tmp_path / "somefile"
    blocker.write_text("keep me")
    status, err = run_cli(write_commands(tiny, blocker)[name], capsys)
    assert status == 2
    assert_one_sentence(err, str(blocker), "is a file, not a folder")
    assert blocker.read_text() == "keep me"


def test_checkpoint_save_that_torch_gives_up_on(tmp_path, capsys, monkeypatch, fake_digits):
    """torch.save on a full disk raises RuntimeError('... inline_container ...'); the run
    directory keeps no partial checkpoint."""
    def full_disk_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0; "
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk_save)
    run = tmp_path / "run"
    status, err = run_cli([*TRAIN, "--out", run], capsys)
    assert status == 2
    assert_one_sentence(err, str(run / "checkpoints" / "step_00000001.pt"), "disk")
    assert not [p for p in files_under(run) if p.startswith("checkpoints")]


def test_an_unnamed_os_error_reaching_the_cli_is_one_sentence(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", str(tmp_path / "x.npz"))

    monkeypatch.setattr("gnm.sampling.sample_to_npz", broken)
    status, err = run_cli(["sample", tmp_path, "--n", 2, "--out", tmp_path / "x.npz"], capsys)
    assert status == 2
    assert_one_sentence(err, str(tmp_path / "x.npz"), "input/output error")


# ---------------------------------------------------------------------------- config values
@pytest.mark.parametrize("assignment,parts", [
    ("model.draw_steps=0", ["model.draw_steps=0", "integer >= 1"]),
    ("train.seed=-1", ["train.seed=-1", "integer >= 0"]),
    ("data.num_workers=-1", ["data.num_workers=-1", "integer >= 0"]),
    ("model.enc_filters=abc", ["model.enc_filters='abc'", "list of integers"]),
    ("model.enc_filters=[8,0,32]", ["model.enc_filters=[8, 0, 32]", "every entry",
                                    "integer >= 1"]),
    ("model.sigma=-0.5", ["model.sigma=-0.5", "number > 0"]),
    ("train.lr=nan", ["train.lr=nan", "finite number"]),
    ("model.tau={start: high}", ["model.tau.start='high'", "finite number"]),
    ("train.judge_n=5", ["train.judge_n=5", "integer >= 20"]),
])
def test_bad_config_values_name_key_value_and_range(assignment, parts, tmp_path, capsys):
    status, err = run_cli([*TRAIN, "--set", assignment, "--out", tmp_path / "run"], capsys)
    assert status == 2
    assert_one_sentence(err, *parts)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_config_built_in_python_is_checked_before_training(tmp_path):
    from gnm.config import Config
    from gnm.errors import GNMError
    from gnm.train.trainer import train

    cfg = Config()
    cfg.model.draw_steps = 0  # no set_override: train() itself must refuse it
    with pytest.raises(GNMError, match=r"model.draw_steps=0 is out of range"):
        train(cfg, tmp_path / "run")
    with pytest.raises(GNMError, match=r"model.z_what_dim=0 is out of range"):
        gnm.build_model("mnist4-cpu", z_what_dim=0)


@pytest.mark.parametrize("size", ["0", "-3"])
def test_sample_batch_size_must_be_positive(size, tiny, tmp_path, capsys):
    status, err = run_cli(["sample", tiny["run"], "--n", 2, "--batch-size", size, "--out",
                           tmp_path / "s.npz"], capsys)
    assert status == 2
    assert_one_sentence(err, f"--batch-size {size}", "integer >= 1")
    assert not (tmp_path / "s.npz").exists()


# ---------------------------------------------------------------------------- --device
@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without a GPU, also where the tests run on one."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("name", ["sample", "eval", "show"])
def test_device_cuda_without_a_gpu(name, tiny, tmp_path, capsys, no_gpu, fake_digits):
    argv = write_commands(tiny, tmp_path / "out")[name] + ["--device", "cuda"]
    status, err = run_cli(argv, capsys)
    assert status == 2
    assert_one_sentence(err, "--device cuda needs a GPU", "use --device cpu")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_train_device_cuda_without_a_gpu(tmp_path, capsys, no_gpu):
    status, err = run_cli([*TRAIN, "--set", "train.device=cuda", "--out", tmp_path / "run"],
                          capsys)
    assert status == 2
    assert_one_sentence(err, "train.device=cuda", "no CUDA device", "train.device=cpu")


def test_device_index_beyond_the_gpus_and_unknown_names(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    argv = ["sample", tiny["run"], "--n", 2, "--out", tmp_path / "s.npz", "--device"]
    status, err = run_cli([*argv, "cuda:3"], capsys)
    assert status == 2
    assert_one_sentence(err, "--device cuda:3 asks for GPU 3", "has 1 (cuda:0..cuda:0)")
    status, err = run_cli([*argv, "gpu0"], capsys)
    assert status == 2
    assert_one_sentence(err, "--device 'gpu0' is not a device name")


# ---------------------------------------------------------------------------- gnm judge
def judge(images, capsys, *extra) -> tuple[int, str, str]:
    code = cli.main(["judge", "--dataset", "mnist4", "--quiet", "--images", str(images),
                     *map(str, extra)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_judge_truncated_npz(tmp_path, capsys):
    images = (np.random.default_rng(0).random((30, 64, 64, 1)) * 255).astype(np.uint8)
    np.savez_compressed(tmp_path / "full.npz", images=images)
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
    code, out, err = judge(tmp_path / "cut.npz", capsys)
    assert code == 2 and "S-Acc" not in out
    assert_one_sentence(err, "cut.npz is not a readable .npz file", "truncated")
    assert not (tmp_path / "cut.judge.json").exists()


def test_judge_a_file_named_png_that_is_not_one(tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"this is not an image")
    code, out, err = judge(folder, capsys)
    assert code == 2 and "S-Acc" not in out
    assert_one_sentence(err, str(folder / "a.png"), "not a readable PNG")
    from PIL import Image

    Image.new("L", (64, 64)).save(folder / "a.png", format="JPEG")  # a JPEG under a .png name
    code, out, err = judge(folder, capsys)
    assert code == 2
    assert_one_sentence(err, "is a JPEG file, not a PNG")


def test_judge_nan_images(tmp_path, capsys):
    images = np.full((25, 64, 64, 1), 0.5, np.float32)
    images[7, 3, 3] = np.nan
    np.savez(tmp_path / "nan.npz", images=images)
    code, out, err = judge(tmp_path / "nan.npz", capsys)
    assert code == 2 and "S-Acc" not in out
    assert_one_sentence(err, "1 of 25 images", "NaN or infinite", "image 7")


def test_judge_images_too_small_for_digits(tmp_path, capsys):
    np.savez(tmp_path / "small.npz", images=np.zeros((25, 24, 24), np.uint8))
    code, out, err = judge(tmp_path / "small.npz", capsys)
    assert code == 2 and "S-Acc" not in out
    assert_one_sentence(err, "24×24 px are too small", "at least 32 px")


def test_judge_no_images_is_an_error(tmp_path, capsys):
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 64, 64, 1), np.uint8))
    code, out, err = judge(tmp_path / "empty.npz", capsys)
    assert code == 2
    assert_one_sentence(err, "holds no images")


def test_judge_fewer_than_20_images_warns_that_the_interval_is_wide(tiny, tmp_path, capsys):
    with np.load(tiny["images"]) as z:
        np.savez(tmp_path / "five.npz", images=z["images"][:5])
    code, out, err = judge(tmp_path / "five.npz", capsys)
    assert code == 0
    assert "n=5" in out and "judging 5 images of 32 px" in out
    assert "gnm: warning: only 5 images" in err and "interval" in err and "wide" in err
    assert (tmp_path / "five.judge.json").is_file()


@pytest.mark.parametrize("fmt", ["npz", "png"])
def test_judge_reads_a_data_make_export_folder(fmt, tmp_path, capsys, fake_digits):
    out = tmp_path / "scenes"
    assert cli.main(["data", "make", "mnist4", "--n", "6", "--size", "32", "--format", fmt,
                     "--quiet", "--out", str(out)]) == 0
    assert (out / "preview.png").is_file()
    capsys.readouterr()
    code, stdout, err = judge(out, capsys)
    assert code == 0, err
    where = "images/*.png" if fmt == "png" else "shards/*.npz"
    assert f"judging 6 images of 32 px from the mnist4/train export in {out} ({where})" in stdout
    assert "n=6" in stdout  # the six scenes, not the preview grid
    assert json.loads((out / "judge.json").read_text())["n"] == 6


# ---------------------------------------------------------------------------- the benchmark
def test_bad_inputs_benchmark_quick_has_no_traceback_and_nothing_silent(tmp_path, capsys):
    script = load_benchmark("bad_inputs")
    assert script.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bad_inputs.json").read_text())
    assert result["cases"] >= 20 and result["seconds"] < 60
    assert result["verdicts"]["TRACEBACK"] == 0 and result["verdicts"]["SILENT"] == 0
    assert result["verdicts"]["ok"] == result["cases"]
    md = (tmp_path / "bad_inputs.md").read_text()
    assert "| judge: NaN images | 2 | gnm: error:" in md


def test_bad_inputs_benchmark_sees_tracebacks_silence_and_leftovers(tmp_path, monkeypatch):
    """The verdicts themselves: a crash, an accepted bad input, a left temporary file."""
    import gnm.sampling

    script = load_benchmark("bad_inputs")

    def crash(ws):
        ws.patch(gnm.sampling, "sample_to_npz", lambda *a, **k: 1 / 0)

    def leave_temp(ws):  # as a write that does not clean up after itself would
        (ws.tmp / ".s.npz.abc.tmp").write_bytes(b"half")

    sample = ["sample", "{run}", "--n", "2", "--out", "{tmp}/s.npz"]
    cases = [script.Case("crash", sample, crash, "x"),
             script.Case("fine input", sample, None, "some error"),
             script.Case("wrong words", [*sample, "--batch-size", "0"], None, "no such words"),
             script.Case("left a temp file", [*sample, "--batch-size", "0"], leave_temp, "")]
    monkeypatch.setattr(script, "GROUPS", [lambda: cases])
    rows = script.run_cases()
    assert [r["verdict"] for r in rows] == ["TRACEBACK", "SILENT", "WRONG", "HALF-WRITTEN"]
    assert rows[0]["message"].startswith("ZeroDivisionError")
    assert gnm.sampling.sample_to_npz.__module__ == "gnm.sampling"  # patches were undone
