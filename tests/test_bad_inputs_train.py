"""Bad training and data inputs end in one ``gnm: error: ...`` line (exit 2), never a traceback.

Every case goes through :func:`gnm.cli.main` with a tiny GNM (32-px scenes of fake digits, a few
steps) or a tiny scene export, and checks the message, the exit code and what is left on disk.
"""

from __future__ import annotations

import json

import pytest
import torch

from gnm import cli
from gnm.models.render import compose
from gnm.train.checkpoint import list_checkpoints, load_checkpoint
from tests.test_pipeline import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

BASE = ["data.size=32", "train.steps=3", "train.batch_size=4", "train.log_every=1",
        "train.ckpt_every=1", "train.sample_every=0", "train.num_threads=1",
        "train.judge_every=0", "train.progress=false", "train.tensorboard=false",
        "train.device=cpu", *(f"model.{k}={json.dumps(v)}" for k, v in TINY.items())]


@pytest.fixture(autouse=True)
def _fake_digits(fake_mnist, monkeypatch):
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)


def train_argv(out, *sets: str, preset: str | None = "mnist4-cpu", resume: bool = False,
               base: bool = True) -> list[str]:
    """``gnm train`` argv for the tiny GNM in ``out`` with extra ``--set`` assignments."""
    argv = ["train", "--out", str(out)]
    if preset is not None:
        argv += ["--preset", preset]
    if resume:
        argv.append("--resume")
    for s in [*(BASE if base else []), *sets]:
        argv += ["--set", s]
    return argv


def error_line(capsys) -> str:
    """The one stderr line of a failed command (asserting there is exactly one error line)."""
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("gnm: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------- 1. divergence
def test_window_render_of_nan_box_gives_nan_image_not_an_error():
    app = torch.rand(1, 2, 1, 8, 8)
    box = torch.tensor([[[0.5, 0.5, float("nan"), -0.5], [0.2, float("inf"), 0.1, 0.1]]])
    out = compose(app, None, box, torch.ones(1, 2), torch.zeros(1, 2, 1),
                  torch.zeros(1, 1, 16, 16), method="window")
    assert out.image.shape == (1, 1, 16, 16) and not torch.isfinite(out.image).all()


def test_huge_learning_rate_stops_at_the_non_finite_check(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_argv(out, "train.lr=1e6")) == 2
    line = error_line(capsys)
    assert line.startswith("gnm: error: training stopped at step 2: loss term(s) 'loss'")
    assert "step_00000001.pt is intact" in line and "lower train.lr" in line
    [ckpt] = list_checkpoints(out)  # the step-1 checkpoint, written before the blow-up
    assert load_checkpoint(ckpt)["step"] == 1


@pytest.mark.parametrize("sets, first", [
    # RMSprop's first step at lr 1e38 makes weights inf: refused before they are checkpointed
    (["train.optimizer=rmsprop", "train.lr=1e30", "train.lr_scale.start=1e8",
      "train.lr_scale.end=1e8"], "training stopped at step 1: the weights became non-finite"),
    # lr · lr_scale beyond float32: torch's optimiser step itself would raise
    (["train.lr=1e30", "train.lr_scale.start=1e10", "train.lr_scale.end=1e10"],
     "training stopped at step 1: the optimiser's step size (lr 1e+40) became non-finite"),
    (["train.lr=1e39"], "train.lr=1e+39 must be a positive number <= 1e+30."),
    (["train.lr=nan"], "train.lr=nan must be a positive number"),
])
def test_diverged_weights_and_absurd_lr(tmp_path, capsys, sets, first):
    out = tmp_path / "run"
    assert cli.main(train_argv(out, *sets)) == 2
    assert error_line(capsys).startswith(f"gnm: error: {first}")
    assert list_checkpoints(out) == []
