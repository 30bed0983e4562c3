"""Bad training and data inputs end in one ``gnm: error: ...`` line (exit 2), never a traceback.

Every case goes through :func:`gnm.cli.main` with a tiny GNM (32-px scenes of fake digits, a few
steps) or a tiny scene export, and checks the message, the exit code and what is left on disk.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gnm import cli
from gnm.data.store import SceneShards
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


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory, fake_mnist):
    """A finished one-step run of the tiny GNM (copy it before changing it)."""
    out = tmp_path_factory.mktemp("base") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
        assert cli.main(train_argv(out, "train.steps=1")) == 0
    return out


def copy_run(src, tmp_path):
    return shutil.copytree(src, tmp_path / "run")


# ---------------------------------------------------------------------------- 1. divergence
def test_window_render_of_nan_box_gives_nan_image_not_an_error():
    app = torch.rand(1, 2, 1, 8, 8)
    box = torch.tensor([[[0.5, 0.5, float("nan"), -0.5], [0.2, float("inf"), 0.1, 0.1]]])
    out = compose(app, None, box, torch.ones(1, 2), torch.zeros(1, 2, 1),
                  torch.zeros(1, 1, 16, 16), method="window")
    assert out.image.shape == (1, 1, 16, 16) and not torch.isfinite(out.image).all()


def test_huge_learning_rate_stops_at_the_non_finite_check(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_argv(out, "train.lr=1e6", "train.ckpt_every=2")) == 2
    line = error_line(capsys)
    assert line.startswith("gnm: error: training stopped at step 2: loss term(s) 'loss', "
                           "'elbo', 'recon_ll'") and line.endswith(
        "became non-finite (NaN or inf); the newest checkpoint (none yet) is intact, so lower "
        "train.lr and resume with --resume.")
    assert list_checkpoints(out) == []  # step 2's checkpoint was never written


def test_huge_learning_rate_right_after_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_argv(out, "train.lr=1e6")) == 2
    [ckpt] = list_checkpoints(out)  # step 1's, holding the weights step 2 blew up on
    assert error_line(capsys).endswith(
        f"became non-finite (NaN or inf) one step after the newest checkpoint {ckpt}, so its "
        "weights diverge: delete it, lower train.lr and resume with --resume (from the "
        "checkpoint before it, or from step 0 if there is none).")
    assert cli.main(train_argv(out, "train.lr=1e-4", resume=True)) == 2  # as it says: again
    assert "one step after the newest checkpoint" in error_line(capsys)
    ckpt.unlink()  # following the advice finishes the run
    assert cli.main(train_argv(out, "train.lr=1e-4", resume=True)) == 0
    assert "but no checkpoint yet, so training starts from step 0" in capsys.readouterr().err
    assert load_checkpoint(out)["step"] == 3


def test_weights_made_inf_by_the_step_are_never_checkpointed(tmp_path, capsys, monkeypatch):
    from gnm.train import trainer

    real = trainer.make_optimizer

    def overflowing(params, tc):  # an optimiser step that overflows one weight to inf
        opt = real(params, tc)
        step = opt.step

        def bad_step(*a, **k):
            out = step(*a, **k)
            with torch.no_grad():
                opt.param_groups[0]["params"][0].fill_(float("inf"))
            return out

        opt.step = bad_step
        return opt

    monkeypatch.setattr(trainer, "make_optimizer", overflowing)
    out = tmp_path / "run"
    assert cli.main(train_argv(out)) == 2
    assert error_line(capsys).startswith("gnm: error: training stopped at step 1: the weights "
                                         "became non-finite (NaN or inf); the newest checkpoint "
                                         "(none yet) is intact")
    assert list_checkpoints(out) == []


def test_an_overflowing_optimiser_step_is_the_non_finite_stop(tmp_path, capsys, monkeypatch):
    def overflow(self, *a, **k):  # what torch raises for a float32 step size beyond 3.4e38
        raise RuntimeError("value cannot be converted to type float without overflow")

    monkeypatch.setattr(torch.optim.Adam, "step", overflow)
    assert cli.main(train_argv(tmp_path / "run")) == 2
    assert error_line(capsys).startswith("gnm: error: training stopped at step 1: the "
                                         "optimiser's step size (lr 0.0003) became non-finite")


@pytest.mark.parametrize("sets, first", [
    # lr · lr_scale beyond float32: torch's optimiser step would raise (it overflows)
    (["train.lr=1e30", "train.lr_scale.start=1e10", "train.lr_scale.end=1e10"],
     "train.lr_scale.start=10000000000.0 must be a number >= 0 with train.lr · "
     "train.lr_scale.start <= 1e+30."),
    (["train.lr_scale.end=-1"], "train.lr_scale.end=-1.0 must be a number >= 0 with "),
    (["train.lr_scale.start=nan"], "train.lr_scale.start=nan must be a finite number."),
    (["train.sample_every=1", "train.sample_n=0"], "train.sample_n=0 must be an integer >= 1."),
    (["train.lr=1e39"], "train.lr=1e+39 must be a positive number <= 1e+30."),
    (["train.lr=nan"], "train.lr=nan must be a finite number."),
])
def test_diverged_weights_and_absurd_lr(tmp_path, capsys, sets, first):
    out = tmp_path / "run"
    assert cli.main(train_argv(out, *sets)) == 2
    assert error_line(capsys).startswith(f"gnm: error: {first}")
    assert list_checkpoints(out) == []


# ---------------------------------------------------------------------------- 2. foreign state
def _edit_checkpoint(run, edit) -> None:
    [path] = list_checkpoints(run)
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_resume_names_extra_and_missing_state_dict_keys(one_step_run, tmp_path, capsys):
    run = copy_run(one_step_run, tmp_path)

    def edit(state):
        state["model"]["old_head.weight"] = torch.zeros(2)
        for key in sorted(state["model"])[:5]:
            if key != "old_head.weight":
                del state["model"][key]

    _edit_checkpoint(run, edit)
    assert cli.main(train_argv(run, "train.steps=2", resume=True)) == 2
    line = error_line(capsys)
    assert line.startswith(f"gnm: error: cannot resume from {run}/checkpoints/step_00000001.pt:"
                           " its model state has 5 missing key(s) ('encoder.")
    assert "(+2 more)) and 1 unexpected key(s) ('old_head.weight')" in line
    assert "start a new run in another --out" in line


@pytest.mark.parametrize("edit, says", [
    (lambda s: s["model"].update({k: torch.zeros(3) for k in list(s["model"])[:1]}),
     "its model state does not fit the model the config builds (size mismatch for "),
    (lambda s: s["optimizer"]["param_groups"][0].update(params=[0]),
     "its optimiser state is missing or damaged (ValueError: "),
    (lambda s: s["rng"].pop("numpy"), "its generator state or step is missing or damaged "
     "(KeyError: 'numpy'); delete that checkpoint"),
])
def test_resume_from_a_checkpoint_that_does_not_fit(one_step_run, tmp_path, capsys, edit, says):
    run = copy_run(one_step_run, tmp_path)
    _edit_checkpoint(run, edit)
    assert cli.main(train_argv(run, "train.steps=2", resume=True)) == 2
    assert says in error_line(capsys)
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001.pt"]


def test_resume_with_another_optimizer_is_refused(one_step_run, tmp_path, capsys):
    run = copy_run(one_step_run, tmp_path)  # Adam's saved state would break RMSprop's step
    assert cli.main(train_argv(run, "train.steps=2", "train.optimizer=rmsprop",
                               resume=True)) == 2
    assert "the config differs in train.optimizer ('adam' -> 'rmsprop')" in error_line(capsys)


# ---------------------------------------------------------------------------- 4. config.json only
def test_resume_with_config_json_but_no_checkpoint_starts_at_step_0(one_step_run, tmp_path,
                                                                     capsys):
    run = copy_run(one_step_run, tmp_path)  # as if killed before its first checkpoint
    shutil.rmtree(run / "checkpoints")
    assert cli.main(["train", "--out", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"note: {run} has config.json but no checkpoint yet, so training starts from step 0 " \
           "with that config.\n" in err
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001.pt"]
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    shutil.rmtree(run / "checkpoints")  # --set overrides apply to that config.json
    assert cli.main(["train", "--out", str(run), "--resume", "--set", "train.steps=2"]) == 0
    assert "starts from step 0 with the given config" in capsys.readouterr().err
    assert load_checkpoint(run)["step"] == 2


def test_resume_with_unreadable_config_json_and_no_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"data": {"si')
    assert cli.main(["train", "--out", str(run), "--resume"]) == 2
    assert error_line(capsys).startswith(f"gnm: error: {run}/config.json cannot be read as a "
                                         "config (")
    assert cli.main(["train", "--out", str(tmp_path / "empty"), "--resume", "--set",
                     "train.steps=2"]) == 2
    assert "holds no checkpoint and no config.json to resume; pass --preset NAME" in \
        error_line(capsys)


# ---------------------------------------------------------------------------- 5. stale .tmp files
def test_leftover_temporary_files_are_removed_at_the_next_start(one_step_run, tmp_path, capsys):
    run = copy_run(one_step_run, tmp_path)
    half = run / "checkpoints" / ".step_00000002.pt.k3v9x1.tmp"  # a torch.save killed midway
    half.write_bytes(b"PK\x03\x04 half a zip")
    (run / ".config.json.a1b2c3.tmp").write_text("{")
    assert cli.main(train_argv(run, "train.steps=2", resume=True)) == 0
    err = capsys.readouterr().err
    assert "note: removed 2 temporary file(s) left by a write killed midway " \
           "('.config.json.a1b2c3.tmp', '.step_00000002.pt.k3v9x1.tmp').\n" in err
    assert not half.exists() and not list(run.rglob("*.tmp"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001.pt",
                                                                 "step_00000002.pt"]


# ---------------------------------------------------------------------------- 3. damaged export
def _make(out, *extra: str) -> list[str]:
    return ["data", "make", "mnist4", "--n", "25", "--shard-size", "10", "--size", "64",
            "--out", str(out), "--quiet", *extra]


def test_data_make_rerun_rebuilds_truncated_and_deleted_shards(tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(_make(out)) == 0
    assert capsys.readouterr().out.startswith(f"wrote 25 mnist4/train scenes to {out} ")
    good = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    assert cli.main(_make(out)) == 0
    assert capsys.readouterr().out == (f"{out} holds all 25 mnist4/train scenes, verified "
                                       f"(sha256); nothing to do (manifest {out}/manifest.json)\n")
    shard = out / "shards" / "00001.npz"
    shard.write_bytes(good["00001.npz"][:300])
    (out / "shards" / "00002.npz").unlink()
    assert cli.main(_make(out)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"rebuilt 2 damaged or missing file(s) in {out}: shards/00001.npz (truncated or changed: "
        "sha256 mismatch); shards/00002.npz (missing)",
        f"wrote 15 of 25 mnist4/train scenes to {out} (manifest {out}/manifest.json, preview "
        f"{out}/preview.png)"]
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == good
    assert len(SceneShards(out)) == 25  # verifies every checksum


def test_data_make_rerun_rebuilds_damaged_pngs_and_annotations(tmp_path, capsys):
    out = tmp_path / "p"
    assert cli.main(_make(out, "--format", "png")) == 0
    (out / "images" / "000013.png").unlink()
    (out / "annotations.json").write_text("[]")
    capsys.readouterr()
    assert cli.main(_make(out, "--format", "png")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"rebuilt 2 damaged or missing file(s) in {out}: shards/00001.json "
                        "(image 000013.png missing); annotations.json (sha256 mismatch)")
    assert lines[1].startswith(f"wrote 10 of 25 mnist4/train scenes to {out} ")
    assert (out / "images" / "000013.png").is_file()
    assert len(json.loads((out / "annotations.json").read_text())) == 25


def test_data_make_with_a_damaged_manifest(tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(_make(out)) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["shards"][1]["sha256"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert cli.main(_make(out)) == 2
    assert error_line(capsys).startswith(f"gnm: error: {out}/manifest.json is unreadable or not "
                                         "a gnm manifest (bad shard entry ")


# ---------------------------------------------------------------------------- 6. --preset --resume
def test_preset_with_resume_starts_a_fresh_run_and_continues_it(tmp_path, capsys):
    """The docs' torchrun command passes both; one process here (tests/test_ddp.py restarts
    a killed rank under torchrun)."""
    run = tmp_path / "run"
    assert cli.main(train_argv(run, "train.steps=1", resume=True)) == 0
    assert capsys.readouterr().out.startswith("trained to step 1; ")
    assert cli.main(train_argv(run, "train.steps=2", resume=True)) == 0
    assert capsys.readouterr().out.startswith("trained to step 2; ")
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == \
        [1, 2]


# ---------------------------------------------------------------------------- other damage
def test_resume_over_a_damaged_metrics_log(one_step_run, tmp_path, capsys):
    run = copy_run(one_step_run, tmp_path)
    with open(run / "metrics.jsonl", "ab") as f:  # a non-record line and a torn binary one
        f.write(b'[1]\n\xff\xfe{"step": 9')
    assert cli.main(train_argv(run, "train.steps=2", resume=True)) == 0
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_sampling_a_diverged_checkpoint_is_refused(one_step_run, tmp_path, capsys):
    """NaN weights would give NaN images, which the uint8/PNG writes turn into black silently."""
    run = copy_run(one_step_run, tmp_path)

    def poison(state):
        state["model"]["encoder.0.bias"][0] = float("nan")
        state["model"]["encoder.0.weight"].view(-1)[3] = float("inf")

    _edit_checkpoint(run, poison)
    out = tmp_path / "s.npz"
    assert cli.main(["sample", str(run), "--n", "2", "--out", str(out)]) == 2
    n = len(torch.load(list_checkpoints(run)[0], weights_only=True)["model"])
    assert error_line(capsys) == (
        f"gnm: error: weights in {run}/checkpoints/step_00000001.pt hold NaN or inf values (2 of "
        f"{n} tensors, e.g. 'encoder.0.bias'): the run diverged; use an earlier checkpoint, or "
        "retrain with a lower train.lr.")
    assert not out.exists()
