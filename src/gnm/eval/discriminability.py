"""D-Steps: how many training steps a fresh binary classifier needs to tell generated images from
real ones at 90% held-out accuracy (paper Section 4; higher = harder to discriminate = more
realistic). The paper does not publish its discriminator, so this module fixes one protocol.

Protocol (defaults; every run records them under ``"protocol"``):

* **Split**, per seed: real and generated images are shuffled separately; the last
  ``n_eval`` of each (250 + 250 = 500 images) form a balanced held-out set, the rest are the
  training pools.
* **Classifier** (:class:`DStepsCNN`, 44k parameters for one channel; any size >= 16 px)::

      Conv(C→8, k4 s2 p1) LReLU(0.2) → Conv(8→16, k4 s2 p1) LReLU → Conv(16→32, k4 s2 p1) LReLU
      → Conv(32→64, k4 s2 p1) LReLU → AdaptiveAvgPool(4×4) → Linear(1024 → 1)  (logit "real")

  No normalisation layers, so a prediction never depends on the rest of its batch. The 4×4
  pooled map keeps the coarse layout, which is what scene-structure errors change. It is kept
  small so that a 5,000-step run on 128 px images stays CPU-affordable (~7M multiply-adds per
  image forward).
* **Training**: Adam, lr 1e-4, betas (0.9, 0.999); each step one balanced batch of 32 real +
  32 generated images drawn uniformly with replacement from the training pools; binary
  cross-entropy on logits.
* **Measurement**: held-out accuracy (logit > 0 means "real") after every ``eval_every`` = 50
  steps and at the cap. D-Steps = the first step count at which it is ``>= 0.9``.
* **Cap**: 5,000 steps. A run that never reaches 90% reports the cap and ``capped = True``; a
  mean over seeds that includes capped runs is a lower bound.
* **Seeds**: (0, 1, 2): the seed sets the split, the initialisation and the batch order. The
  summary is the mean and sample standard deviation (ddof = 1) over seeds.
  Runs are bit-reproducible on CPU; on a GPU, cuDNN convolution kernels may add tiny run-to-run
  differences unless ``torch.use_deterministic_algorithms(True)`` is set by the caller.

Resolution is ``eval_every`` steps, so values are multiples of it (or the cap). The paper's
numbers (e.g. 3,920 for GNM on MNIST-4) come from an unpublished discriminator and are not
directly comparable; compare models under this one protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from gnm.errors import GNMError
from gnm.eval.stats import mean_std

#: Output channels of the classifier's four stride-2 convolutions.
CHANNELS: tuple[int, ...] = (8, 16, 32, 64)
#: Held-out accuracy that ends a run.
TARGET_ACCURACY = 0.9


class DStepsCNN(nn.Module):
    """The fixed D-Steps discriminator (see the module docstring); returns logits ``[B]``."""

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in CHANNELS:
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            prev = ch
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(prev * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def _as_images(x: torch.Tensor, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 4:
        raise GNMError(f"{name} must be a 4-D tensor [N, C, H, W], got shape {tuple(x.shape)}.")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise GNMError(f"{name} must be float images in [0, 1] or uint8, got {x.dtype}.")
    return x.float()


@torch.no_grad()
def _held_out_accuracy(model: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                       chunk: int = 256) -> float:
    correct = 0
    for images, is_real in ((real, True), (fake, False)):
        for start in range(0, images.shape[0], chunk):
            logits = model(images[start:start + chunk])
            correct += int(((logits > 0) == is_real).sum())
    return correct / (real.shape[0] + fake.shape[0])


def d_steps_run(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, cap: int = 5000,
                eval_every: int = 50, n_eval: int = 250, batch_size: int = 32, lr: float = 1e-4,
                target: float = TARGET_ACCURACY, progress: bool = True) -> dict:
    """One seeded D-Steps run. Arguments as in :func:`d_steps`.

    Returns ``{"steps", "capped", "accuracy", "curve"}``: the step count (the cap if never
    reached), whether it was capped, the held-out accuracy at that step, and the list of
    ``[step, held-out accuracy]`` measurements.
    """
    n_real, n_fake = real.shape[0], fake.shape[0]
    gen = torch.Generator().manual_seed(seed)
    perm_real = torch.randperm(n_real, generator=gen).to(real.device)
    perm_fake = torch.randperm(n_fake, generator=gen).to(fake.device)
    real_tr, real_ev = real[perm_real[:-n_eval]], real[perm_real[-n_eval:]]
    fake_tr, fake_ev = fake[perm_fake[:-n_eval]], fake[perm_fake[-n_eval:]]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DStepsCNN(real.shape[1])
    model.to(real.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    targets = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)]).to(real.device)

    curve: list[list[float]] = []
    steps, acc = cap, 0.0
    bar = tqdm(range(1, cap + 1), desc=f"D-Steps seed {seed}", disable=not progress, leave=False)
    for step in bar:
        i_r = torch.randint(real_tr.shape[0], (batch_size,), generator=gen).to(real.device)
        i_f = torch.randint(fake_tr.shape[0], (batch_size,), generator=gen).to(real.device)
        model.train()
        logits = model(torch.cat([real_tr[i_r], fake_tr[i_f]]))
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == cap:
            model.eval()
            acc = _held_out_accuracy(model, real_ev, fake_ev)
            curve.append([step, acc])
            bar.set_postfix(acc=f"{acc:.3f}")
            if acc >= target:
                steps = step
                break
    bar.close()
    return {"steps": int(steps), "capped": bool(acc < target), "accuracy": float(acc),
            "curve": curve}


def d_steps(real: torch.Tensor, fake: torch.Tensor, seeds: Sequence[int] = (0, 1, 2),
            cap: int = 5000, eval_every: int = 50, n_eval: int = 250, batch_size: int = 32,
            lr: float = 1e-4, progress: bool = True,
            device: str | torch.device | None = None) -> dict:
    """D-Steps of generated images ``fake`` against real images ``real``, over several seeds.

    Args:
        real: ``[N, C, H, W]`` real images in [0, 1] (float, or uint8 0..255).
        fake: ``[M, C, H, W]`` generated images, same ``C, H, W``.
        seeds: one independent run per seed (split, initialisation, batch order).
        cap: most training steps per run; capped runs report ``cap``.
        eval_every: steps between held-out accuracy measurements (the result's resolution).
        n_eval: held-out images *per class*; needs ``N, M > n_eval``.
        batch_size: images *per class* in a training batch (32 + 32 by default).
        lr: Adam learning rate.
        device: where to train (``None``: the device of ``real``).

    Returns:
        ``{"mean", "std", "steps", "capped", "any_capped", "accuracy", "seeds", "curves",
        "protocol"}``: mean / sample std of the per-seed step counts, the per-seed step counts,
        capped flags and final held-out accuracies, the seeds, the per-seed accuracy curves
        (lists of ``[step, accuracy]``) and the settings used.
    """
    real = _as_images(real, "real images")
    fake = _as_images(fake, "generated images")
    if real.shape[1:] != fake.shape[1:]:
        raise GNMError(f"real images {tuple(real.shape[1:])} and generated images "
                       f"{tuple(fake.shape[1:])} differ in shape; compare images of one size.")
    if min(real.shape[-2:]) < 16:
        raise GNMError(f"images of {tuple(real.shape[-2:])} px are too small for the D-Steps "
                       "classifier; it needs at least 16x16.")
    if n_eval < 1 or cap < 1 or eval_every < 1 or batch_size < 1 or not seeds:
        raise GNMError("n_eval, cap, eval_every and batch_size must be positive and seeds "
                       "non-empty.")
    for name, n in (("real", real.shape[0]), ("generated", fake.shape[0])):
        if n <= n_eval:
            raise GNMError(f"D-Steps needs more than n_eval={n_eval} {name} images (held out) "
                           f"plus some to train on, but got {n}; give more images or lower "
                           "n_eval.")
    device = real.device if device is None else torch.device(device)
    real, fake = real.to(device), fake.to(device)

    runs = [d_steps_run(real, fake, seed=int(s), cap=cap, eval_every=eval_every, n_eval=n_eval,
                        batch_size=batch_size, lr=lr, progress=progress) for s in seeds]
    steps = [r["steps"] for r in runs]
    mean, std = mean_std(steps)
    capped = [r["capped"] for r in runs]
    return {
        "mean": mean, "std": std, "steps": steps, "capped": capped, "any_capped": any(capped),
        "accuracy": [r["accuracy"] for r in runs], "seeds": [int(s) for s in seeds],
        "curves": [r["curve"] for r in runs],
        "protocol": {"classifier": "DStepsCNN conv8-16-32-64 k4s2 + pool4 + linear",
                     "optimizer": "adam", "lr": lr, "batch_per_class": batch_size,
                     "eval_every": eval_every, "n_eval_per_class": n_eval, "cap": cap,
                     "target_accuracy": TARGET_ACCURACY},
    }
