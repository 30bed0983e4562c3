"""The training loop, run on a tiny stand-in model that obeys the model contract.

The stand-in (:class:`TinyVAE`) is shared with test_checkpoint.py and test_ddp.py.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gnm.config import Config, set_override
from gnm.data.scenes import SceneDataset
from gnm.errors import GNMError
from gnm.train.checkpoint import list_checkpoints, load_checkpoint
from gnm.train.logger import read_metrics
from gnm.train.sampler import StepBatchSampler
from gnm.train.trainer import train
from tests.conftest import make_fake_mnist

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SIZE = 32  # image side of the test scenes (pixels)


class _PoisonGrad(torch.autograd.Function):
    """Identity forward; NaN gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class TinyVAE(nn.Module):
    """A two-conv VAE obeying the contract: ``forward(x, step) -> dict``, ``sample(n)``.

    Loss terms in nats per image (batch means): Gaussian ``recon_ll`` (σ = 0.2), ``kl`` to
    N(0, I), ``elbo = recon_ll - kl``, ``loss = -elbo``. ``deterministic`` uses the posterior
    mean instead of a sample; ``nan_at`` / ``poison_grad_at`` make the loss term ``kl`` or the
    gradient non-finite at that model step, for the failure tests.
    """

    def __init__(self, size: int = SIZE, z_dim: int = 8, deterministic: bool = False) -> None:
        super().__init__()
        self.z_dim, self.deterministic, self.side = z_dim, deterministic, size // 4
        feat = 16 * self.side * self.side
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.CELU(), nn.Conv2d(8, 16, 4, 2, 1),
                                 nn.CELU(), nn.Flatten(), nn.Linear(feat, 2 * z_dim))
        self.fc = nn.Linear(z_dim, feat)
        self.dec = nn.Sequential(nn.CELU(), nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.CELU(),
                                 nn.ConvTranspose2d(8, 1, 4, 2, 1))
        self.nan_at: int | None = None
        self.poison_grad_at: int | None = None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 16, self.side, self.side)
        return torch.sigmoid(self.dec(h))

    def forward(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        mu, raw = self.enc(x).chunk(2, -1)
        std = F.softplus(raw) + 1e-4
        z = mu if self.deterministic else mu + std * torch.randn_like(std)
        recon = self.decode(z)
        recon_ll = torch.distributions.Normal(recon.float(), 0.2).log_prob(x.float())
        recon_ll = recon_ll.sum((1, 2, 3)).mean()
        kl = (0.5 * (mu.float() ** 2 + std.float() ** 2 - 1) - std.float().log()).sum(-1).mean()
        if step == self.nan_at:
            kl = kl * float("nan")
        elbo = recon_ll - kl
        loss = -elbo
        if step == self.poison_grad_at:
            loss = _PoisonGrad.apply(loss)
        return {"loss": loss, "elbo": elbo, "recon_ll": recon_ll, "kl": kl, "recon": recon}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.fc.weight.device
        return self.decode(torch.randn(n, self.z_dim, generator=generator, device=device))


def build_tiny(cfg: Config) -> TinyVAE:
    """Registry stand-in: the model a config describes."""
    return TinyVAE(size=cfg.data.size)


def tiny_model(seed: int = 0, **kwargs) -> TinyVAE:
    torch.manual_seed(seed)
    return TinyVAE(**kwargs)


def tiny_dataset(mnist=None, length: int = 256) -> SceneDataset:
    return SceneDataset("mnist4", "train", SIZE, seed=0, length=length,
                        mnist=mnist if mnist is not None else make_fake_mnist(120, 20))


def tiny_config(*overrides: str) -> Config:
    """A CPU config for SIZE-pixel scenes, no progress bar, everything logged every step."""
    cfg = Config()
    for assignment in ("data.size=32", "train.batch_size=8", "train.steps=4",
                       "train.log_every=1", "train.ckpt_every=1000", "train.sample_every=0",
                       "train.progress=false", "train.tensorboard=false", "train.device=cpu",
                       *overrides):
        set_override(cfg, assignment)
    return cfg


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- tests
def test_loss_falls_and_run_dir_holds_records(tmp_path, fake_mnist, capsys):
    cfg = tiny_config("train.steps=20", "train.lr=0.002", "train.ckpt_every=5",
                      "train.sample_every=10", "train.sample_n=4", "train.keep_last=2",
                      "train.tensorboard=true")
    result = train(cfg, tmp_path / "run", model=tiny_model(), dataset=tiny_dataset(fake_mnist))
    run = tmp_path / "run"

    assert Config.from_dict(json.loads((run / "config.json").read_text())) == cfg
    records = read_metrics(run)
    assert [r["step"] for r in records] == list(range(1, 21))
    for key in ("time", "elapsed", "loss", "elbo", "recon_ll", "kl", "lr", "grad_norm",
                "steps_per_s"):
        assert key in records[0], key
    assert "recon" not in records[0]  # only scalars are logged
    first = sum(r["loss"] for r in records[:5]) / 5
    final = sum(r["loss"] for r in records[-5:]) / 5
    assert final < first - 0.05 * abs(first)

    assert [p.name for p in list_checkpoints(run)] == ["step_00000015.pt", "step_00000020.pt"]
    assert result["step"] == 20 and result["checkpoint"].endswith("step_00000020.pt")
    assert result["metrics"]["step"] == 20 and isinstance(result["model"], TinyVAE)
    pngs = sorted(p.name for p in (run / "samples").iterdir())
    assert pngs == ["step_00000010_prior.png", "step_00000010_recon.png",
                    "step_00000020_prior.png", "step_00000020_recon.png"]
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert "tensorboard is not installed" in capsys.readouterr().err


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, fake_mnist):
    data = tiny_dataset(fake_mnist, length=20)  # 8-image batches cross epoch boundaries
    full = train(tiny_config("train.steps=6"), tmp_path / "full", model=tiny_model(),
                 dataset=data)

    train(tiny_config("train.steps=3"), tmp_path / "cut", model=tiny_model(), dataset=data)
    # A fresh process would build a fresh model; a different init must not matter.
    resumed = train(tiny_config("train.steps=6"), tmp_path / "cut", resume=True,
                    model=tiny_model(seed=123), dataset=data)

    assert _states_equal(full["model"].state_dict(), resumed["model"].state_dict())
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "cut")
    assert a["step"] == b["step"] == 6
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                      strict=True):
        assert _states_equal(sa, sb)
    strip = ("time", "elapsed", "steps_per_s")
    ma = [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(tmp_path / "full")]
    mb = [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(tmp_path / "cut")]
    assert ma == mb and len(ma) == 6


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path, fake_mnist):
    data = tiny_dataset(fake_mnist)
    run = tmp_path / "run"
    train(tiny_config("train.steps=4", "train.ckpt_every=2", "train.keep_last=0"), run,
          model=tiny_model(), dataset=data)
    (run / "checkpoints" / "step_00000004.pt").unlink()  # as if killed after logging step 4
    train(None, run, resume=True, model=tiny_model(), dataset=data)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]


def test_existing_run_needs_resume_and_matching_config(tmp_path, fake_mnist):
    data = tiny_dataset(fake_mnist)
    train(tiny_config("train.steps=2"), tmp_path, model=tiny_model(), dataset=data)
    with pytest.raises(GNMError, match="--resume"):
        train(tiny_config("train.steps=2"), tmp_path, model=tiny_model(), dataset=data)
    with pytest.raises(GNMError, match="train.seed"):
        train(tiny_config("train.steps=4", "train.seed=5"), tmp_path, resume=True,
              model=tiny_model(), dataset=data)
    done = train(tiny_config("train.steps=2"), tmp_path, resume=True, model=tiny_model(),
                 dataset=data)
    assert done["step"] == 2  # nothing left to do


def test_nonfinite_loss_term_stops_and_keeps_last_checkpoint(tmp_path, fake_mnist):
    model = tiny_model()
    model.nan_at = 4  # the model step of optimiser step 5
    cfg = tiny_config("train.steps=10", "train.ckpt_every=2", "train.keep_last=0")
    with pytest.raises(GNMError, match=r"step 5: loss term\(s\) 'loss', 'elbo', 'kl'") as info:
        train(cfg, tmp_path, model=model, dataset=tiny_dataset(fake_mnist))
    assert "step_00000004.pt" in str(info.value)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002.pt",
                                                            "step_00000004.pt"]
    state = load_checkpoint(tmp_path)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_nonfinite_gradient_stops(tmp_path, fake_mnist):
    model = tiny_model()
    model.poison_grad_at = 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(GNMError, match="step 2: the gradient became non-finite"):
        train(tiny_config(), tmp_path, model=model, dataset=tiny_dataset(fake_mnist))
    assert list_checkpoints(tmp_path) == []
    changed = [k for k in before if not torch.equal(before[k], model.state_dict()[k])]
    assert changed  # step 1 was taken; step 2's poisoned update was not
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_bf16_autocast_and_adam_run(tmp_path, fake_mnist):
    cfg = tiny_config("train.steps=2", "train.bf16=true", "train.optimizer=adam")
    result = train(cfg, tmp_path, model=tiny_model(), dataset=tiny_dataset(fake_mnist))
    assert result["step"] == 2
    assert isinstance(load_checkpoint(tmp_path)["optimizer"]["param_groups"][0]["betas"], tuple)


def test_bad_settings_are_gnm_errors(tmp_path, fake_mnist):
    with pytest.raises(GNMError, match="train.optimizer"):
        train(tiny_config("train.optimizer=sgd"), tmp_path, model=tiny_model(),
              dataset=tiny_dataset(fake_mnist))
    with pytest.raises(GNMError, match="train.log_every=0 is out of range"):
        train(tiny_config("train.log_every=0"), tmp_path, model=tiny_model(),
              dataset=tiny_dataset(fake_mnist))
    cfg = tiny_config()
    cfg.train.log_every = 0  # set without set_override: train() checks it too
    with pytest.raises(GNMError, match="train.log_every=0 is out of range"):
        train(cfg, tmp_path, model=tiny_model(), dataset=tiny_dataset(fake_mnist))


def test_data_order_is_a_pure_function_of_seed_and_step():
    a = StepBatchSampler(10, 4, seed=3, start_step=0, end_step=5)
    b = StepBatchSampler(10, 4, seed=3, start_step=2, end_step=5)
    batches = list(a)
    assert batches[2:] == list(b)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat[:10]) == list(range(10))  # epoch 0 is a permutation
    assert sorted(flat[10:20]) == list(range(10))  # and so is epoch 1
    assert flat[:10] != flat[10:20]
    assert list(StepBatchSampler(10, 4, seed=4, start_step=0, end_step=5)) != batches


def test_tensorboard_gets_scalars_and_images_when_installed(tmp_path, fake_mnist, monkeypatch):
    calls = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, step))

        def add_image(self, tag, image, step, dataformats):
            calls.append(("image", tag, step, image.shape[-1], dataformats))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard",
                        types.SimpleNamespace(SummaryWriter=FakeWriter))
    cfg = tiny_config("train.steps=2", "train.tensorboard=true", "train.sample_every=2")
    train(cfg, tmp_path, model=tiny_model(), dataset=tiny_dataset(fake_mnist))
    assert calls[0] == ("init", str(tmp_path / "tb")) and calls[-1] == ("close",)
    assert ("scalar", "loss", 1) in calls and ("scalar", "steps_per_s", 2) in calls
    assert ("image", "recon", 2, 1, "HWC") in calls and ("image", "prior", 2, 1, "HWC") in calls


def test_judge_every_logs_sacc_of_prior_samples(tmp_path, fake_mnist):
    """Black prior samples hold no objects, so every verdict fails: S-Acc 0 with its interval."""
    model = tiny_model()
    model.sample = lambda n, generator=None: torch.zeros(n, 1, SIZE, SIZE)
    cfg = tiny_config("train.judge_every=2", "train.judge_n=20")
    train(cfg, tmp_path, model=model, dataset=tiny_dataset(fake_mnist))
    judged = [r for r in read_metrics(tmp_path) if "sacc" in r]
    assert [r["step"] for r in judged] == [2, 4]
    for r in judged:
        assert r["sacc"] == 0.0 and r["judge_n"] == 20 and 0 < r["sacc_hi"] < 0.25
        assert r["judge_s"] > 0 and r["elapsed"] > 0


@pytest.mark.mnist
def test_judge_every_passes_real_scenes(tmp_path, fake_mnist):
    """A 'model' whose prior samples are real MNIST-4 test scenes scores S-Acc near 1."""
    from gnm.data.mnist import MNIST_FILES, load_mnist, mnist_dir
    from gnm.data.scenes import SceneGenerator

    if not all((mnist_dir() / f).exists() for f in MNIST_FILES):
        pytest.skip("real MNIST not present; run `gnm data mnist`")
    real = SceneGenerator("mnist4", "test", 64, seed=1, mnist=load_mnist(allow_download=False))
    model = tiny_model()
    model.sample = lambda n, generator=None: torch.from_numpy(
        real.batch(range(n))[0]).float().div(255).unsqueeze(1)
    cfg = tiny_config("train.judge_every=4", "train.judge_n=100", "train.steps=4")
    train(cfg, tmp_path, model=model, dataset=tiny_dataset(fake_mnist))
    (judged,) = [r for r in read_metrics(tmp_path) if "sacc" in r]
    assert judged["sacc"] >= 0.95


def test_judge_every_needs_a_judged_dataset(tmp_path, fake_mnist, monkeypatch):
    from gnm.eval import judges

    # the Arrow Room as a dataset without a judge (it has one since judge version 1)
    monkeypatch.setattr(judges, "BUILTIN", {k: v for k, v in judges.BUILTIN.items()
                                            if k != "arrow"})
    monkeypatch.setattr(judges, "_JUDGES", {k: v for k, v in judges._JUDGES.items()
                                            if k != "arrow"})
    cfg = tiny_config("train.judge_every=2", "data.dataset=arrow")
    with pytest.raises(GNMError, match="judge_every"):
        train(cfg, tmp_path, model=tiny_model(), dataset=tiny_dataset(fake_mnist))


def test_time_limit_stops_after_the_step_that_exceeds_it(tmp_path, fake_mnist, monkeypatch):
    """A fake clock that advances 1 s per read: the limit is crossed at a known step, which is
    then checkpointed, logged, sampled and judged like a last step."""
    import gnm.train.trainer as trainer_mod

    clock = iter(range(10**6))
    monkeypatch.setattr(trainer_mod.time, "time", lambda: float(next(clock)))
    model = tiny_model()
    cfg = tiny_config("train.steps=100", "train.log_every=50", "train.ckpt_every=50",
                      "train.sample_every=50", "train.sample_n=4", "train.judge_every=50",
                      "train.judge_n=20", "train.time_limit_s=6")
    result = train(cfg, tmp_path, model=model, dataset=tiny_dataset(fake_mnist))
    stopped = result["step"]
    assert 1 <= stopped < 10  # a few clock reads per step: far fewer than 100 steps
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"step_{stopped:08d}.pt"]
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records if "elbo" in r] == [stopped]
    assert [r["step"] for r in records if "sacc" in r] == [stopped]
    assert (tmp_path / "samples" / f"step_{stopped:08d}_prior.png").exists()
    assert result["metrics"]["step"] == stopped
    assert load_checkpoint(tmp_path)["step"] == stopped


def test_time_limit_off_and_bad_values(tmp_path, fake_mnist):
    cfg = tiny_config("train.steps=3", "train.time_limit_s=0")
    assert train(cfg, tmp_path / "a", model=tiny_model(),
                 dataset=tiny_dataset(fake_mnist))["step"] == 3
    with pytest.raises(GNMError, match="time_limit_s"):  # refused as soon as it is set
        tiny_config("train.time_limit_s=-1")
    cfg.train.time_limit_s = float("inf")
    with pytest.raises(GNMError, match="time_limit_s"):
        train(cfg, tmp_path / "b", model=tiny_model(), dataset=tiny_dataset(fake_mnist))


def test_lr_scale_schedule_sets_each_steps_learning_rate(tmp_path, fake_mnist):
    cfg = tiny_config("train.steps=6", "train.lr=0.01", "train.lr_scale.start_step=2",
                      "train.lr_scale.end_step=4", "train.lr_scale.start=1.0",
                      "train.lr_scale.end=0.5")
    train(cfg, tmp_path, model=tiny_model(), dataset=tiny_dataset(fake_mnist))
    lrs = [r["lr"] for r in read_metrics(tmp_path)]  # record k holds step k's lr (t = k - 1)
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.0075, 0.005, 0.005])
    saved = json.loads((tmp_path / "config.json").read_text())["train"]["lr_scale"]
    assert saved == {"start_step": 2, "end_step": 4, "start": 1.0, "end": 0.5}


def test_lr_decay_ending_at_minus_one_follows_train_steps():
    from gnm.config import Schedule
    from gnm.train.config import TrainConfig

    tc = TrainConfig(steps=100, lr=1e-3, lr_scale=Schedule(40, -1, 1.0, 0.1))
    assert [tc.lr_at(t) for t in (0, 40, 70, 100, 150)] == pytest.approx(
        [1e-3, 1e-3, 0.55e-3, 1e-4, 1e-4])
    tc.steps = 200  # a longer run decays over its own length, not the old 100 steps
    assert tc.lr_at(120) == pytest.approx(0.55e-3) and tc.lr_at(200) == pytest.approx(1e-4)
    tc.lr_scale = Schedule(40, 70, 1.0, 0.1)  # an explicit end_step is kept
    assert tc.lr_at(70) == pytest.approx(1e-4)
