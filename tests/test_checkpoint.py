"""Checkpoints: atomic writes, pruning, safe loading, RNG states, export to safetensors."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from gnm.config import Config
from gnm.errors import GNMError
from gnm.train import checkpoint as ck
from gnm.train.trainer import make_optimizer
from tests.test_trainer import (
    build_tiny,
    tiny_config,
    tiny_dataset,
    tiny_model,
)

CFG = tiny_config()


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _save(run, step, keep_last=0, model=None):
    model = model or tiny_model()
    opt = make_optimizer(model.parameters(), CFG.train)
    return ck.save_checkpoint(run, step, model, opt, CFG, {"seed": 0, "step": step},
                              keep_last=keep_last)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = tiny_model()
    path = _save(tmp_path, 7, model=model)
    assert path == tmp_path / "checkpoints" / "step_00000007.pt"
    state = ck.load_checkpoint(tmp_path)  # a run directory resolves to its newest checkpoint
    assert state["step"] == 7 and state["data_order"] == {"seed": 0, "step": 7}
    assert Config.from_dict(state["config"]) == CFG
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value)
    assert ck.load_config(path) == CFG


def test_rng_states_restore_exactly(tmp_path):
    saved = ck.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    _save(tmp_path, 1)  # the states go through a file and torch.load(weights_only=True)
    ck.restore_rng_state(saved)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])
    state = ck.load_checkpoint(tmp_path)
    ck.restore_rng_state(state["rng"])  # loadable from the file, too


def test_keep_last_prunes_old_checkpoints(tmp_path):
    for step in range(1, 6):
        _save(tmp_path, step, keep_last=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step_00000004.pt",
                                                               "step_00000005.pt"]
    assert ck.latest_checkpoint(tmp_path).name == "step_00000005.pt"


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    _save(tmp_path, 1)

    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(GNMError, match="step_00000002.pt: disk full"):  # names the target
        _save(tmp_path, 2)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000001.pt"]
    assert ck.load_checkpoint(tmp_path)["step"] == 1


def test_damaged_or_foreign_files_are_gnm_errors(tmp_path):
    path = _save(tmp_path, 3)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(GNMError, match="cannot be read"):
        ck.load_checkpoint(path)
    with pytest.raises(GNMError, match="not a gnm checkpoint"):
        torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
        ck.load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(GNMError, match="holds no checkpoints"):
        ck.load_checkpoint(tmp_path / "empty_run")
    with pytest.raises(GNMError, match="does not exist"):
        ck.load_model(tmp_path / "missing.safetensors", build=build_tiny)


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_loading_never_executes_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    evil = tmp_path / "checkpoints" / "step_00000001.pt"
    evil.write_bytes(pickle.dumps({"format": ck.FORMAT, "payload": _Boom()}, protocol=2))
    with pytest.raises(GNMError):
        ck.load_checkpoint(tmp_path)
    torch.save({"format": ck.FORMAT, "payload": _Boom()}, evil)
    with pytest.raises(GNMError):
        ck.load_model(tmp_path, build=build_tiny)
    assert not (tmp_path / "PWNED").exists()


def test_export_then_load_gives_identical_outputs(tmp_path, fake_mnist):
    from gnm.train.trainer import train

    run = tmp_path / "run"
    result = train(tiny_config("train.steps=3"), run, model=tiny_model(),
                   dataset=tiny_dataset(fake_mnist))
    out = ck.export_weights(run, tmp_path / "export" / "tiny.safetensors")
    assert out.is_file()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["step"] == 3 and Config.from_dict(sidecar["config"]) == tiny_config(
        "train.steps=3")
    assert sidecar["elapsed"] > 0  # training wall-clock seconds
    with safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()["gnm_config"]) == sidecar["config"]
        assert float(f.metadata()["gnm_elapsed"]) == sidecar["elapsed"]

    trained = result["model"].eval()
    x = tiny_dataset(fake_mnist)[0]["image"][None]
    for source in (out, run, ck.latest_checkpoint(run)):
        loaded = ck.load_model(source, build=build_tiny)
        assert not loaded.training
        with torch.no_grad():
            torch.manual_seed(1)
            a = trained(x, 0)
            torch.manual_seed(1)
            b = loaded(x, 0)
        assert torch.equal(a["recon"], b["recon"]) and torch.equal(a["loss"], b["loss"])
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        assert torch.equal(trained.sample(4, generator=g1), loaded.sample(4, generator=g2))

    out.with_suffix(".json").unlink()  # the safetensors metadata alone suffices
    assert ck.load_config(out) == tiny_config("train.steps=3")


def test_load_model_rejects_weights_of_another_shape(tmp_path):
    _save(tmp_path, 1)
    out = ck.export_weights(tmp_path, tmp_path / "w.safetensors")
    with pytest.raises(GNMError, match="do not fit"):
        ck.load_model(out, build=lambda cfg: tiny_model(size=64))
    with pytest.raises(GNMError, match="do not fit"):
        ck.load_model(out, build=lambda cfg: tiny_model(z_dim=4))
    with pytest.raises(GNMError, match="2 missing, 12 unexpected"):
        ck.load_model(out, build=lambda cfg: torch.nn.Linear(2, 2))
    with pytest.raises(GNMError, match=".safetensors"):
        ck.export_weights(tmp_path, tmp_path / "w.bin")


def test_fp16_export_halves_the_file_and_loads_as_float32(tmp_path, capsys):
    from gnm import cli

    model = tiny_model()
    _save(tmp_path, 3, model=model)
    full = ck.export_weights(tmp_path, tmp_path / "full.safetensors")
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "half.safetensors"),
                     "--fp16"]) == 0
    assert "sha256" in capsys.readouterr().out
    half = tmp_path / "half.safetensors"
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with safe_open(str(half), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    loaded = ck.load_model(half, build=lambda cfg: tiny_model())
    for name, p in loaded.state_dict().items():
        assert p.dtype == torch.float32
        torch.testing.assert_close(p, model.state_dict()[name], atol=1e-3, rtol=1e-3)
