"""The judge's digit classifier: 10 digit classes plus a reject class (index 10).

Input: a 28×28 crop framed like an MNIST field (mass-centred), floats in [0, 1], as produced by
:func:`gnm.eval.objects.crop_object` from a 128-px scene. Training uses MNIST train digits
0..54,999 with augmentation that mimics generated scenes (stroke width, scale, rotation, shift,
blur, dimming, the 64→128 px resampling of CPU-scale models, and the crop's ink masking), and
synthetic reject examples (a quarter of each batch): blobs, two merged digits, scribbles of
straight strokes, heavy blur, shuffled tiles, and since judge version 2 pen scribbles,
half-erased digits and digits overlaid 2.5-6 px apart (the second adding at least 30% more
ink), 40% of them resampled through 14 px.
(Single strokes and small fragments are not used: they are too often a fair "1".)

Shipped weights: ``gnm/assets/judge_digits.safetensors`` (fp16; judge version 2), made from
scratch by ``python -m gnm.eval.digits --out src/gnm/assets/judge_digits.safetensors``
(3,000 steps of 128, seed 0, one thread: about 8 minutes); the training report is stored in
the file's metadata (99.27% on MNIST test, 0.34% of test digits rejected, 98.9% of synthetic
rejects caught; 505 s).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from gnm.errors import GNMError

REJECT = 10
N_CLASSES = 11
DEFAULT_WEIGHTS = "judge_digits.safetensors"


class DigitNet(nn.Module):
    """Small CNN: [N, 1, 28, 28] -> logits [N, 11]; ``features`` gives the 256-d penultimate."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, 32), nn.MaxPool2d(2),  # 14x14
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 7x7
            *block(64, 128), nn.MaxPool2d(2), nn.Flatten(),  # 128*3*3
            nn.Linear(128 * 9, 256), nn.ReLU(),
        )
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(256, N_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, 256]`` of crops ``[N, 1, 28, 28]``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.body(x)))


# ----------------------------------------------------------------------------- augmentation
def _gauss_kernel(sigma: torch.Tensor, radius: int = 6) -> torch.Tensor:
    """Per-sample 1-D Gaussian kernels ``[N, 2r+1]`` (sigma <= 0.05 gives a delta)."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    s = sigma.clamp_min(0.05)[:, None]
    k = torch.exp(-0.5 * (t[None] / s) ** 2)
    return k / k.sum(1, keepdim=True)


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``[N, 1, H, W]`` with a per-sample ``sigma`` in pixels."""
    n = x.shape[0]
    k = _gauss_kernel(sigma)
    r = (k.shape[1] - 1) // 2
    y = F.conv2d(F.pad(x.transpose(0, 1), (r, r, 0, 0), mode="constant"), k[:, None, None, :],
                 groups=n)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="constant"), k[:, None, :, None], groups=n)
    return y.transpose(0, 1)


def warp(x: torch.Tensor, g: torch.Generator, scale=(0.85, 1.15), rot_deg=12.0,
         shift_px=2.0) -> torch.Tensor:
    """Random scale / rotation / shift of ``[N, 1, 28, 28]``."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=g)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    a = (2 * u[:, 1] - 1) * math.radians(rot_deg)
    t = (2 * u[:, 2:] - 1) * shift_px * 2 / x.shape[-1]
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1),
                         torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def ink_mask(x: torch.Tensor, ink: float = 0.3) -> torch.Tensor:
    """What :func:`gnm.eval.objects.crop_object` keeps: ink plus a one-pixel ring around it."""
    keep = F.max_pool2d((x >= ink).float(), 3, 1, 1)
    return x * keep


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Digits ``[N, 1, 28, 28]`` in [0, 1] -> renderings like those in generated scenes
    (judge version 2 added the stroke width: 20% are made 1 px bolder, 10% 2 px bolder, 10%
    1 px thinner)."""
    n = x.shape[0]
    w = torch.rand(n, generator=g)
    bold, bolder, thin = w < 0.2, (w >= 0.2) & (w < 0.3), w > 0.9
    if bold.any():
        x[bold] = F.max_pool2d(F.pad(x[bold], (0, 1, 0, 1)), 2, 1)
    if bolder.any():
        x[bolder] = F.max_pool2d(x[bolder], 3, 1, 1)
    if thin.any():
        x[thin] = -F.max_pool2d(F.pad(-x[thin], (0, 1, 0, 1)), 2, 1)
    x = warp(x, g)
    u = torch.rand(n, 4, generator=g)
    low = u[:, 0] < 0.4  # CPU-scale models: 14-px digits upsampled to 28
    if low.any():
        y = F.interpolate(x[low], size=(14, 14), mode="area")
        x[low] = F.interpolate(y, size=(28, 28), mode="bilinear", align_corners=False)
    x = blur(x, u[:, 1] * 1.2)
    x = x * (0.55 + 0.45 * u[:, 2])[:, None, None, None]
    peak = (0.6 + 0.4 * u[:, 3])[:, None, None, None]
    x = x / x.amax((1, 2, 3), keepdim=True).clamp_min(1e-3) * peak
    x = x + 0.03 * torch.rand(x.shape, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) < 0.3)
    return ink_mask(x.clamp(0, 1))


def _recentre(x: torch.Tensor) -> torch.Tensor:
    """Shift each image so its intensity centroid sits at the field centre (integer shift)."""
    n, _, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]
    m = x[:, 0].sum((1, 2)).clamp_min(1e-6)
    cy = (x[:, 0] * ys).sum((1, 2)) / m
    cx = (x[:, 0] * xs).sum((1, 2)) / m
    out = torch.zeros_like(x)
    for i in range(n):
        dy, dx = int(round(h / 2 - 0.5 - cy[i].item())), int(round(w / 2 - 0.5 - cx[i].item()))
        out[i] = torch.roll(x[i], shifts=(dy, dx), dims=(1, 2))
    return out


def _scribble(g: torch.Generator) -> torch.Tensor:
    """A pen scribble ``[28, 28]``: a random walk with momentum (12-31 steps of 1.5-3 px, the
    heading turning by N(0, 30-90°) per step, reflected at the field's 5-px margin), drawn as
    a 1-3 px line."""
    r = torch.rand(6, generator=g)
    n, turn, step = 12 + int(r[0] * 20), math.radians(30 + 60 * float(r[1])), 1.5 + 1.5 * r[2]
    pos, heading = 14 + (torch.rand(2, generator=g) - 0.5) * 8, float(r[3]) * 2 * math.pi
    img = torch.zeros(28, 28)
    t = torch.linspace(0, 1, 8)[:, None]
    for _ in range(n):
        heading += float(torch.randn(1, generator=g)) * turn
        new = pos + step * torch.tensor([math.sin(heading), math.cos(heading)])
        if not 5 <= new[0] <= 23:  # new = (y, x)
            heading = -heading
        if not 5 <= new[1] <= 23:
            heading = math.pi - heading
        new = new.clamp(5, 23)
        pts = (pos * (1 - t) + new * t).round().long()
        img[pts[:, 0], pts[:, 1]] = 1.0
        pos = new
    width = 1 + int(r[4] * 3)
    if width > 1:
        img = F.max_pool2d(img[None, None], width, 1, width // 2)[0, 0, :28, :28]
    return img


def _half_erased(d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Digit ``[1, 28, 28]`` with 40-60% of its ink box cut away across the box's longer side
    (top or bottom of a tall digit, left or right of a wide one)."""
    ink = d[0] >= 0.3
    rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
    if len(rows) == 0:
        return d
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    out = d.clone()
    tall = y1 - y0 >= x1 - x0
    lo, hi = (y0, y1) if tall else (x0, x1)
    cut = lo + int(round((hi - lo) * (0.4 + 0.2 * float(r[0]))))
    view = out[0] if tall else out[0].T
    if r[1] < 0.5:
        view[:cut] = 0
    else:
        view[cut:] = 0
    return out


def make_rejects(digits: torch.Tensor, g: torch.Generator,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
    """Non-digit marks ``[N, 1, 28, 28]`` built from ``digits`` (same shape; ``labels`` their
    classes, if known): eight kinds, mixed. Kinds 5-7 (scribbles, half-erased digits, digits
    overlaid 2.5-6 px apart) were added for judge version 2, as was the 14-px resampling of
    40% (how 64-px scenes show them)."""
    n = digits.shape[0]
    kind = torch.randint(0, 8, (n,), generator=g)
    out = torch.zeros_like(digits)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    for i in range(n):
        k = int(kind[i])
        d = digits[i]
        r = torch.rand(8, generator=g)
        if k == 0:  # blob: a filled ellipse
            cy, cx = 14 + (r[0] - 0.5) * 6, 14 + (r[1] - 0.5) * 6
            ry, rx = 4 + 6 * r[2], 4 + 6 * r[3]
            e = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            out[i, 0] = (e <= 1).float() * (0.6 + 0.4 * r[4])
        elif k == 1:  # two merged digits
            other = digits[(i + 1 + int(r[0] * (n - 1))) % n]
            dy, dx = int((r[1] - 0.5) * 16), int(8 + 6 * r[2]) * (1 if r[3] < 0.5 else -1)
            if r[4] < 0.5:
                dy, dx = dx, dy
            out[i] = torch.maximum(d, torch.roll(other, shifts=(dy, dx), dims=(1, 2)))
        elif k == 2:  # scribble: 3-5 random strokes
            for _ in range(3 + int(r[0] * 3)):
                p = torch.rand(4, generator=g) * 20 + 4
                t = torch.linspace(0, 1, 40)[:, None]
                pts = (p[:2] * (1 - t) + p[2:] * t).round().long().clamp(0, 27)
                out[i, 0, pts[:, 0], pts[:, 1]] = 1.0
            out[i] = F.max_pool2d(out[i : i + 1], 3, 1, 1)[0] if r[1] < 0.5 else out[i]
        elif k == 3:  # heavy blur
            out[i] = blur(d[None], torch.tensor([2.5 + 2.0 * r[0]]))[0]
            out[i] = out[i] / out[i].max().clamp_min(1e-3) * (0.5 + 0.5 * r[1])
        elif k == 4:  # shuffled 7-px tiles
            tiles = d[0].reshape(4, 7, 4, 7).permute(0, 2, 1, 3).reshape(16, 7, 7)
            tiles = tiles[torch.randperm(16, generator=g)]
            out[i, 0] = tiles.reshape(4, 4, 7, 7).permute(0, 2, 1, 3).reshape(28, 28)
        elif k == 5:  # a pen scribble of 1-3 px lines
            out[i, 0] = _scribble(g) * (0.7 + 0.3 * r[0])
        elif k == 6:  # half of a digit
            out[i] = _half_erased(d, r)
        else:  # two digits of different classes overlaid 2.5-6 px apart, visibly two
            for _ in range(8):
                j = (i + 1 + int(torch.randint(0, n - 1, (1,), generator=g))) % n
                if labels is not None:
                    others = (labels != labels[i]).nonzero()
                    if len(others):
                        j = int(others[torch.randint(0, len(others), (1,), generator=g)])
                a, rad = torch.rand(2, generator=g)
                a, rad = float(a) * 2 * math.pi, 2.5 + 3.5 * float(rad)
                dy, dx = int(round(rad * math.sin(a))), int(round(rad * math.cos(a)))
                second = torch.roll(digits[j], shifts=(dy, dx), dims=(1, 2))
                own = d >= 0.3
                if ((second >= 0.3) & ~own).sum() >= 0.3 * own.sum():
                    break
            out[i] = torch.maximum(d, second)
    out = _recentre(out)
    out = blur(out, torch.rand(n, generator=g) * 0.8)
    low = torch.rand(n, generator=g) < 0.4  # v2: as 64-px scenes show them, like the digits
    if low.any():
        y = F.interpolate(out[low], size=(14, 14), mode="area")
        out[low] = F.interpolate(y, size=(28, 28), mode="bilinear", align_corners=False)
        out[low] = out[low] / out[low].amax((1, 2, 3), keepdim=True).clamp_min(1e-3)
    return ink_mask(out.clamp(0, 1))


# ----------------------------------------------------------------------------- train / load
def train_digit_classifier(mnist, steps: int = 3000, batch_size: int = 128, lr: float = 2e-3,
                           reject_fraction: float = 0.25, seed: int = 0, progress: bool = True,
                           init: str | Path | None = None) -> tuple[DigitNet, dict]:
    """Train :class:`DigitNet` on MNIST train digits 0..54,999; report MNIST test accuracy.

    ``mnist``: :class:`gnm.data.mnist.MNIST`; ``init``: weights to start from (fine-tuning)
    instead of a random initialisation. Returns the model (eval mode) and a report dict.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(np.array(mnist.train_images[:55_000])).float().div(255).unsqueeze(1)
    labels = torch.from_numpy(mnist.train_labels[:55_000].astype(np.int64))
    net = DigitNet() if init is None else load_classifier(init)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    n_rej = int(batch_size * reject_fraction)
    start = time.time()
    bar = tqdm(range(steps), desc="judge classifier", disable=not progress)
    net.train()
    for _ in bar:
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        x, y = images[idx].clone(), labels[idx].clone()
        aug = torch.rand(batch_size, generator=g) < 0.6  # the rest stay clean MNIST digits
        x[aug] = augment(x[aug], g)
        x[:n_rej] = make_rejects(images[idx[:n_rej]].clone(), g, labels[idx[:n_rej]])
        y[:n_rej] = REJECT
        loss = F.cross_entropy(net(x), y, label_smoothing=0.02)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    report = evaluate_on_mnist(net, mnist)
    report.update({"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                   "reject_fraction": reject_fraction, "train_seconds": time.time() - start,
                   "threads": torch.get_num_threads(), "init": None if init is None else
                   Path(init).name})
    return net, report


@torch.no_grad()
def evaluate_on_mnist(net: DigitNet, mnist, batch_size: int = 1000) -> dict:
    """Accuracy on the 10,000 MNIST test digits (a reject counts as an error), their reject
    rate, and the share of 2,000 synthetic rejects (made from test digits) caught."""
    x = torch.from_numpy(np.array(mnist.test_images)).float().div(255).unsqueeze(1)
    y = torch.from_numpy(mnist.test_labels.astype(np.int64))
    pred = torch.cat([net(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    rejects = make_rejects(x[:2000].clone(), torch.Generator().manual_seed(123))
    caught = torch.cat([net(rejects[i:i + batch_size]).argmax(1) for i in range(0, 2000,
                                                                               batch_size)])
    return {"mnist_test_accuracy": float((pred == y).float().mean()),
            "mnist_test_reject_rate": float((pred == REJECT).float().mean()),
            "synthetic_reject_recall": float((caught == REJECT).float().mean())}


def save_classifier(net: DigitNet, path: str | Path, report: dict) -> None:
    """Save weights as fp16 safetensors with the report as metadata (atomic)."""
    from safetensors.torch import save_file

    from gnm.io import atomic_write

    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in net.state_dict().items()}
    meta = {"report": json.dumps(report)}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def load_classifier(path: str | Path | None = None) -> DigitNet:
    """Load the judge classifier (default: the weights shipped in the package); eval mode."""
    from safetensors.torch import load_file

    if path is None:
        ref = resources.files("gnm") / "assets" / DEFAULT_WEIGHTS
        path = Path(str(ref))
    path = Path(path)
    if not path.is_file():
        raise GNMError(f"judge weights {path} are missing; reinstall gnm or make them with "
                       "`python -m gnm.eval.digits --out <path>`.")
    try:
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in load_file(str(path)).items()}
        net = DigitNet()
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any load failure is the same user error
        raise GNMError(f"judge weights {path} cannot be loaded ({exc}); make them again with "
                       "`python -m gnm.eval.digits --out <path>`.") from exc
    return net.eval()


def main() -> None:
    """``python -m gnm.eval.digits``: train and save the judge classifier."""
    p = argparse.ArgumentParser(description="train the S-Acc judge's digit classifier")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--reject-fraction", type=float, default=0.25)
    p.add_argument("--init", default=None, help="weights to fine-tune (default: train afresh)")
    args = p.parse_args()
    from gnm.data.mnist import load_mnist

    torch.set_num_threads(args.threads)
    net, report = train_digit_classifier(load_mnist(args.data_dir), args.steps, lr=args.lr,
                                         reject_fraction=args.reject_fraction, seed=args.seed,
                                         init=args.init)
    save_classifier(net, args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
