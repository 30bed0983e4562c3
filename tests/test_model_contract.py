"""The model contract (gnm/models/base.py) for every registered model, and a model from outside
the library (tests/toy_vae.py) through every command: train, load in a fresh process, sample,
eval --metrics all (skipping what it cannot do, with the reason) and show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gnm
from gnm import cli
from gnm.config import Config, set_override, to_dict
from gnm.errors import GNMError
from gnm.models.base import CAPABILITIES, FORWARD_KEYS, check_forward, require, supports, why_not
from gnm.models.registry import build_model, config_class, model_names
from tests import toy_vae  # registers toy_vae
from tests.test_gnm import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py
ROOT = Path(__file__).resolve().parents[1]
from tests.test_baselines import SMALL as BASELINES  # noqa: E402
from tests.test_genesis import SMALL as GENESIS  # noqa: E402

SMALL = {"gnm": {"size": 32, **TINY}, "toy_vae": {"size": 32}, "genesis": {"size": 32, **GENESIS},
         **{k: {"size": 32, **BASELINES[k]} for k in ("vae", "convdraw", "space")}}


def _small(name: str) -> torch.nn.Module:
    kw = dict(SMALL[name])
    size = kw.pop("size")
    torch.manual_seed(0)
    return build_model(config_class(name)(), size=size, **kw)


# ---------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", model_names())
def test_forward_contract(name):
    model = _small(name)
    x = torch.rand(3, model.channels, model.img_size, model.img_size)
    out = check_forward(model(x, 0))
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    for key in ("elbo", "recon_ll"):
        assert out[key].dim() == 0, key
    kls = getattr(model, "elbo_kls", None) or [k for k in out if k.startswith("kl_")]
    assert kls and all(out[k].dim() == 0 and out[k] >= -1e-4 for k in kls)
    assert out["recon"].shape == x.shape
    # the ELBO is the reconstruction term minus the KL terms (nats per image)
    torch.testing.assert_close(out["elbo"], out["recon_ll"] - sum(out[k] for k in kls))


@pytest.mark.parametrize("name", model_names())
def test_declared_capabilities_work(name):
    model = _small(name).eval()
    x = torch.rand(2, model.channels, model.img_size, model.img_size)
    g = torch.Generator().manual_seed(0)
    if supports(model, "sample"):
        s = model.sample(2, generator=g)
        assert s.shape == x.shape and 0 <= s.min() and s.max() <= 1
    if supports(model, "log_importance_weight"):
        assert model.log_importance_weight(x).shape == (2,)
    if supports(model, "reconstruct"):
        assert model.reconstruct(x).shape == x.shape
    if supports(model, "decompose"):
        d = model.decompose(x)
        assert d["boxes"].shape[-1] == 4 and d["presence"].shape == d["boxes"].shape[:2]


def test_config_round_trips_through_json_for_every_model():
    for name in model_names():
        cfg = Config()
        set_override(cfg, f"model.name={name}")
        back = Config.from_dict(json.loads(json.dumps(to_dict(cfg))))
        assert type(back.model) is config_class(name) and back == cfg


def test_supports_and_the_one_sentence():
    vae = _small("toy_vae")
    assert [c for c in CAPABILITIES if supports(vae, c)] == [
        "sample", "log_importance_weight", "reconstruct"]
    assert why_not(vae, "decompose") == ("model ToyVAE cannot decompose scenes into objects: it "
                                         "has no decompose method")
    assert why_not(vae, "sample") == ""
    with pytest.raises(GNMError, match=r"^gnm demo needs a model that can decompose scenes "
                                       r"into objects, but it has no decompose method "
                                       r"\(model ToyVAE\)\.$"):
        require(vae, "decompose", "gnm demo")

    class NoDensity(torch.nn.Module):  # has the method, declares it does not work
        lacks = ("sample",)
        lacks_why = {"sample": "its prior has no density"}

        def sample(self, n, generator=None):
            raise AssertionError("never called")

    assert not supports(NoDensity(), "sample")
    assert why_not(NoDensity(), "sample").endswith("draw prior samples: its prior has no density")
    with pytest.raises(GNMError, match="lacks recon"):
        check_forward({"loss": 0, "elbo": 0, "recon_ll": 0})
    assert set(FORWARD_KEYS) == {"loss", "elbo", "recon_ll", "recon"}


def test_unknown_models_and_mismatched_legacy_keys():
    with pytest.raises(GNMError, match="unknown model 'nope': the built-in models are convdraw, "
                                       "genesis, gnm, space, vae; a "
                                       "model defined elsewhere must be imported first"):
        Config.from_dict({"model": {"name": "nope"}})
    old = to_dict(Config())  # a config saved before size and channels moved to data
    old["model"].update(img_size=128, channels=1)
    assert Config.from_dict(old) == Config()
    old["model"]["img_size"] = 64
    with pytest.raises(GNMError, match="model.img_size=64 but data.size=128"):
        Config.from_dict(old)


# ---------------------------------------------------------------------------- a toy VAE end to end
TOY_TRAIN = ["--set", "model.name=toy_vae", "--set", "model.z_dim=3", "--set", "data.size=32",
             "--set", "train.steps=4", "--set", "train.batch_size=4", "--set",
             "train.judge_every=2", "--set", "train.judge_n=20", "--set", "train.sample_every=2",
             "--set", "train.ckpt_every=2", "--set", "train.progress=false", "--set",
             "train.tensorboard=false"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, fake_mnist):
    run = tmp_path_factory.mktemp("toy") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
        assert cli.main(["train", "--preset", "mnist4-cpu", "--out", str(run), *TOY_TRAIN]) == 0
    return run


def test_toy_vae_trains_and_saves_its_own_config(toy_run):
    saved = json.loads((toy_run / "config.json").read_text())
    assert saved["model"] == {"name": "toy_vae", "z_dim": 3, "hidden": 16, "sigma": 0.2}
    steps = [json.loads(x) for x in (toy_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r][-1] == 4
    assert any("sacc" in r for r in steps)  # judged in training (it can sample)
    model = gnm.load_model(toy_run)
    assert isinstance(model, toy_vae.ToyVAE) and model.config.z_dim == 3


def test_toy_vae_loads_and_samples_in_a_fresh_process(toy_run, tmp_path):
    code = (f"import tests.toy_vae, gnm; m = gnm.load_model({str(toy_run)!r}); "
            "print(type(m).__name__, m.config.z_dim, m.img_size)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["ToyVAE", "3", "32"], out.stderr
    samples = tmp_path / "s.npz"
    cmd = [sys.executable, "-m", "gnm", "--import", "tests.toy_vae", "sample", str(toy_run),
           "--n", "5", "--out", str(samples)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import numpy as np

    assert np.load(samples)["images"].shape == (5, 32, 32, 1)
    # without the import, one sentence naming what to do
    out = subprocess.run(cmd[:3] + cmd[5:], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and out.stderr.startswith(
        "gnm: error: unknown model 'toy_vae': the built-in models are convdraw, genesis, gnm, "
        "space, vae; a model defined elsewhere must be imported first (in Python: import its "
        "module; on the command line: gnm --import MODULE ...).")


def test_toy_vae_eval_all_skips_what_it_cannot_do(toy_run, tmp_path, fake_mnist, monkeypatch,
                                                  capsys):
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
    out = tmp_path / "ev"
    assert cli.main(["eval", str(toy_run), "--metrics", "all", "--n", "20", "--ll-n", "4",
                     "--ll-k", "3", "--dsteps-cap", "20", "--quiet", "--out", str(out)]) == 0
    result = json.loads((out / "eval.json").read_text())
    for m in ("sacc", "dsteps", "fd", "ll"):
        assert result[m] is not None, m
    for m in ("ap50", "ap", "probe"):
        assert result[m] is None
        assert (f"{m}: not measured: model ToyVAE cannot decompose scenes into objects: it "
                "has no decompose method.") in result["notes"]


def test_toy_vae_show_draws_what_it_supports(toy_run, tmp_path, fake_mnist, monkeypatch,
                                             capsys):
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
    out = tmp_path / "pics"
    assert cli.main(["show", str(toy_run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["prior_samples.png", "reconstructions.png"]
    err = capsys.readouterr().err
    assert ("skipped decomposition: model ToyVAE cannot decompose scenes into objects: it has "
            "no decompose method") in err
    assert "skipped global_traversal: model ToyVAE cannot traverse the global latent: it has " \
           "no traverse_global, encode_global method" in err


def test_evaluate_takes_a_model_in_memory(toy_run, tmp_path, fake_mnist, monkeypatch):
    from gnm.eval import run as eval_run
    from gnm.eval.metrics import METRICS, STAGE_ORDER
    from gnm.train.checkpoint import load_config

    assert set(eval_run._STAGES) == set(STAGE_ORDER)  # every stage a metric names runs
    assert all(set(m.stages) <= set(STAGE_ORDER) for m in METRICS.values())
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
    model, cfg = gnm.load_model(toy_run), load_config(toy_run)
    monkeypatch.chdir(tmp_path)
    r = eval_run.evaluate(model, cfg, ["sacc", "ap"], n=20, progress=False)
    assert r["model"] == "ToyVAE" and 0 <= r["sacc"] <= 1 and r["ap"] is None
    assert list(tmp_path.iterdir()) == []  # nothing written without out
    cfg.data.dataset = "mystery"  # a dataset without a judge: sacc is skipped, with the reason
    todo, notes = eval_run.runnable(model, "mystery", ["sacc", "ll"])
    assert todo == ["ll"] and notes == [
        "sacc: not measured: dataset mystery has no S-Acc judge."]
    todo, notes = eval_run.runnable(model, "arrow", ["fd", "ll"])  # fd: digit features only
    assert todo == ["ll"] and notes == [
        "fd: not measured: it is defined for mnist4, mnist10, mnist4_10 only, not arrow."]
