"""The Arrow Room judge's network: a small fully convolutional net read per pixel.

At the judge's reference size (``SIDE = 64`` px; larger images are area-averaged down) the net
maps an RGB image ``[B, 3, 64, 64]`` to per-pixel maps ``[B, 19, 64, 64]``:

==========  ==  =================================================================
channels    n   meaning (trained on rendered scenes, from the hit buffer)
==========  ==  =================================================================
shape       5   floor, sphere, cube, cylinder, arrow (softmax; every pixel)
colour      8   CLEVR colour of the object under the pixel (object pixels only)
material    2   rubber, metal (object pixels only)
anchor      1   heat map, ``exp(−d²/2σ²)`` around each object's *floor anchor*: the image
                of its floor point ``(x, y, 0)`` (σ = 1.5 px; sigmoid)
direction   2   on arrow pixels: the image-plane unit vector of the arrow's heading, the
                image of the floor direction ``(cos ψ, sin ψ, 0)`` at its anchor
depth       1   object centre's distance from the camera / 10 (object pixels only)
==========  ==  =================================================================

The anchors make pointing exact in the image: a floor line from the arrow through its target
projects to the image line from the arrow's anchor through the target's anchor, so "the arrow
points at k" is read as the smallest angle between the predicted direction and the anchor
differences (:func:`gnm.data.arrow_room.pointed_at` on image coordinates).

Training scenes (:func:`training_scenes`) mix rule-following layouts with *free* layouts
(2-6 objects of any shape, arrows included, per-object materials, any yaw, anywhere on the
floor), so the net cannot learn the rule from context: it must read each object. Images are
augmented with blur, noise and gain, as a model's samples are blurrier than renders.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from gnm.data.arrow_room import (
    COLOURS,
    FOV,
    SIZE,
    ArrowRoomGenerator,
    Layout,
    sample_camera,
    stack_layouts,
)
from gnm.data.raycast import ARROW, project

SIDE = 64
MAX_OBJECTS = 6
SIGMA = 1.5
N_SHAPE, N_COLOUR, N_MATERIAL = 5, len(COLOURS), 2
#: channel slices of the net's output
SHAPE, COLOUR, MATERIAL = slice(0, 5), slice(5, 13), slice(13, 15)
ANCHOR, DIRECTION, DEPTH = 15, slice(16, 18), 18
OUT_CHANNELS = 19
DEPTH_SCALE = 10.0
MIN_LABEL_PIXELS = 6  # objects with fewer visible pixels at 64 px get no anchor peak


class ArrowNet(nn.Module):
    """A two-level U-Net, 64 → 16 px and back, ~0.4M parameters; ``forward(x [B, 3, H, W])``
    in [0, 1] (H = W = 64) returns logits/values ``[B, 19, H, W]`` (module docstring).
    ``crop`` is the shape classifier applied to each found object's window
    (:mod:`gnm.eval.arrow_crops`)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(o, o, 3, padding=1), nn.ReLU(inplace=True))

        self.down1, self.down2, self.mid = block(3, w), block(w, 2 * w), block(2 * w, 3 * w)
        self.up2, self.up1 = block(5 * w, 2 * w), block(3 * w, w)
        self.head = nn.Conv2d(w, OUT_CHANNELS, 1)
        from gnm.eval.arrow_crops import CropNet

        self.crop = CropNet()  # shape of each found object (gnm.eval.arrow_crops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x - 0.5)
        b = self.down2(F.max_pool2d(a, 2))
        c = self.mid(F.max_pool2d(b, 2))
        b = self.up2(torch.cat([b, F.interpolate(c, scale_factor=2.0)], 1))
        a = self.up1(torch.cat([a, F.interpolate(b, scale_factor=2.0)], 1))
        return self.head(a)


def to_side(images: torch.Tensor) -> torch.Tensor:
    """Float images ``[B, 3, S, S]`` resized to ``SIDE`` px (area average; S = SIDE: as is)."""
    if images.shape[-1] == SIDE:
        return images
    return F.interpolate(images, size=(SIDE, SIDE), mode="area")


# ----------------------------------------------------------------------------- scenes
def free_layout(rng: np.random.Generator) -> Layout:
    """A layout that ignores the rule: 2-6 objects of any shape (arrows included), colours
    and (per object) materials at random, any yaw, spread over the visible floor at least
    ``2.2 r`` apart; the camera as :func:`gnm.data.arrow_room.sample_layout`'s."""
    k = int(rng.integers(2, MAX_OBJECTS + 1))
    xy: list[np.ndarray] = []
    for _ in range(400):
        if len(xy) == k:
            break
        p = np.array([rng.uniform(-2.8, 2.8), rng.uniform(-2.6, 3.4)])
        if all(np.linalg.norm(p - q) >= 2.2 * SIZE for q in xy):
            xy.append(p)
    k = len(xy)
    same = rng.random() < 0.5
    material = np.full(k, rng.integers(0, 2)) if same else rng.integers(0, 2, k)
    eye, look = sample_camera(rng)
    return Layout(rng.integers(0, 4, k)[None], rng.integers(0, len(COLOURS), k)[None],
                  material[None], np.stack(xy)[None], rng.uniform(0, 2 * math.pi, k)[None],
                  np.array([-1]), eye[None], look[None])


def _pad(layout: Layout, k: int = MAX_OBJECTS) -> Layout:
    """``layout`` (one scene) with per-object materials and ``k`` object slots (−1: none)."""
    n = layout.shape.shape[1]
    mat = np.asarray(layout.material).reshape(1, -1)
    mat = np.repeat(mat, n, 1) if mat.shape[1] == 1 else mat
    fill = k - n
    return Layout(np.pad(layout.shape, ((0, 0), (0, fill)), constant_values=-1),
                  np.pad(layout.colour, ((0, 0), (0, fill))),
                  np.pad(mat, ((0, 0), (0, fill))),
                  np.pad(layout.pos, ((0, 0), (0, fill), (0, 0)), constant_values=50.0),
                  np.pad(layout.yaw, ((0, 0), (0, fill))), layout.target, layout.eye,
                  layout.look_at)


@dataclass
class SceneLabels:
    """Rendered training scenes: ``images`` uint8 ``[N, 3, S, S]``, hit buffers ``ids`` int8
    ``[N, S, S]`` (object slot or −1), and per object slot (``K = MAX_OBJECTS``): ``shape``,
    ``colour``, ``material`` ``[N, K]`` (−1 / 0 where no object), ``anchor`` ``[N, K, 2]``
    (col, row px), ``direction`` ``[N, K, 2]`` (image unit vector; zeros but for arrows),
    ``depth`` ``[N, K]`` (world units) and ``pixels`` ``[N, K]`` (visible pixel count)."""

    images: torch.Tensor
    ids: torch.Tensor
    shape: torch.Tensor
    colour: torch.Tensor
    material: torch.Tensor
    anchor: torch.Tensor
    direction: torch.Tensor
    depth: torch.Tensor
    pixels: torch.Tensor


def label_layout(layout: Layout, size: int = SIDE) -> dict[str, torch.Tensor]:
    """Anchors, arrow directions and depths ``[B, K, ·]`` of a padded layout batch."""
    f32 = torch.float32
    eye, look = torch.from_numpy(layout.eye).to(f32), torch.from_numpy(layout.look_at).to(f32)
    pos = torch.from_numpy(layout.pos).to(f32)
    yaw = torch.from_numpy(layout.yaw).to(f32)
    ground = F.pad(pos, (0, 1))
    ahead = ground + 0.3 * torch.stack([yaw.cos(), yaw.sin(), torch.zeros_like(yaw)], -1)
    anchor = project(ground, eye, look, FOV, size)
    d = F.normalize(project(ahead, eye, look, FOV, size) - anchor, dim=-1)
    arrow = torch.from_numpy(layout.shape == ARROW)
    centre = ground + torch.tensor([0.0, 0.0, SIZE])
    depth = (centre - eye[:, None]).norm(dim=-1)
    return {"anchor": anchor, "direction": torch.where(arrow[..., None], d, 0.0),
            "depth": depth}


def training_scenes(n: int, seed: int = 0, rule_share: float = 0.4, batch: int = 64,
                    progress: bool = True) -> SceneLabels:
    """``n`` labelled scenes at ``SIDE`` px (rendered at 2× and averaged down, as
    ``gnm data make arrow --size 64``): a ``rule_share`` of rule-following layouts (train
    split, numpy streams ``[seed, 13, i]`` decide which), the rest :func:`free_layout`."""
    gen = ArrowRoomGenerator("train", SIDE, seed=1000 + seed)
    parts: list[dict] = []
    bar = tqdm(total=n, desc="judge scenes", unit="scene", disable=not progress)
    for start in range(0, n, batch):
        lays = []
        for i in range(start, min(n, start + batch)):
            rng = np.random.default_rng([seed, 13, i])
            lay = gen.layout(i) if rng.random() < rule_share else free_layout(rng)
            lays.append(_pad(lay))
        lay = stack_layouts(lays)
        out = gen.render(lay)
        ids = out["ids"]
        lab = label_layout(lay)
        parts.append({
            "images": (out["image"] * 255 + 0.5).to(torch.uint8), "ids": ids.to(torch.int8),
            "shape": torch.from_numpy(lay.shape), "colour": torch.from_numpy(lay.colour),
            "material": torch.from_numpy(lay.material), **lab,
            "pixels": torch.stack([(ids == k).sum((1, 2)) for k in range(MAX_OBJECTS)], 1)})
        bar.update(len(lays))
    bar.close()
    return SceneLabels(**{k: torch.cat([p[k] for p in parts]) for k in parts[0]})


def pixel_targets(s: SceneLabels, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pixel targets ``[B, S, S]`` (``direction`` ``[B, 2, S, S]``) of scenes ``idx``:
    shape class (0 floor), colour/material/depth (valid where ``fg``), the anchor heat map,
    and the arrow direction (valid where ``is_arrow``)."""
    ids = s.ids[idx].long()
    fg = ids >= 0
    slot = ids.clamp_min(0)

    def gather(t: torch.Tensor) -> torch.Tensor:
        return t[idx].gather(1, slot.flatten(1)).view_as(ids)

    shape = torch.where(fg, gather(s.shape.long()) + 1, 0)
    side = ids.shape[-1]
    c = torch.arange(side, dtype=torch.float32) + 0.5
    anchor = s.anchor[idx]  # [B, K, 2]
    d2 = ((c.view(1, 1, 1, -1) - anchor[..., 0, None, None]) ** 2
          + (c.view(1, 1, -1, 1) - anchor[..., 1, None, None]) ** 2)
    labelled = (s.pixels[idx] >= MIN_LABEL_PIXELS) & (s.shape[idx] >= 0)
    heat = torch.where(labelled[..., None, None], torch.exp(-d2 / (2 * SIGMA ** 2)), 0.0)
    direction = torch.stack([gather(s.direction[..., 0]), gather(s.direction[..., 1])], 1)
    return {"shape": shape, "fg": fg, "colour": gather(s.colour.long()),
            "material": gather(s.material.long()), "depth": gather(s.depth) / DEPTH_SCALE,
            "heat": heat.amax(1), "direction": direction, "is_arrow": shape == ARROW + 1}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur (σ up to 1 px, half the images), gain ±8%, noise σ up to 0.03; ``x [B, 3, S, S]``."""
    from gnm.eval.digits import _gauss_kernel

    b, c, h, w = x.shape
    sigma = torch.rand(b, generator=g) * (torch.rand(b, generator=g) < 0.5)
    k = _gauss_kernel(sigma.repeat_interleave(c), radius=3)  # [B·C, 7]
    y = F.pad(x.reshape(1, b * c, h, w), (3, 3, 3, 3), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    x = F.conv2d(y, k[:, None, :, None], groups=b * c).view(b, c, h, w)
    x = x * (1 + 0.08 * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1))
    x = x + 0.03 * torch.rand(b, 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def judge_loss(out: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The training loss's terms on net output ``out [B, 19, S, S]`` and targets ``t``."""
    fg, arrow = t["fg"], t["is_arrow"]
    terms = {"shape": F.cross_entropy(out[:, SHAPE], t["shape"]),
             "heat": F.binary_cross_entropy_with_logits(out[:, ANCHOR], t["heat"],
                                                        pos_weight=torch.tensor(10.0))}
    if fg.any():
        pix = out.permute(0, 2, 3, 1)[fg]  # [P, 19]
        terms["colour"] = F.cross_entropy(pix[:, COLOUR], t["colour"][fg])
        terms["material"] = F.cross_entropy(pix[:, MATERIAL], t["material"][fg])
        terms["depth"] = (pix[:, DEPTH] - t["depth"][fg]).abs().mean()
    if arrow.any():
        pred = out[:, DIRECTION].permute(0, 2, 3, 1)[arrow]
        want = t["direction"].permute(0, 2, 3, 1)[arrow]
        terms["direction"] = ((pred - want) ** 2).sum(-1).mean()
    terms["loss"] = sum(terms.values())
    return terms


def train_arrow_net(n_scenes: int = 12_000, steps: int = 4000, batch_size: int = 32,
                    lr: float = 2e-3, seed: int = 0, progress: bool = True,
                    crop_steps: int = 3000, init: str | None = None
                    ) -> tuple[ArrowNet, dict]:
    """Render ``n_scenes`` labelled scenes; train :class:`ArrowNet`'s U-Net on them for
    ``steps`` (Adam, cosine lr decay, augmentation), then its crop classifier for
    ``crop_steps`` (:func:`gnm.eval.arrow_crops.train_crop_net`). ``init``: weights to start
    from (e.g. a trained U-Net, with ``steps = 0``). Returns the net (eval mode) and a
    report."""
    from gnm.eval.arrow_crops import train_crop_net

    t0 = time.time()
    torch.manual_seed(seed)
    scenes = training_scenes(n_scenes, seed, progress=progress)
    render_s = time.time() - t0
    net = ArrowNet()
    if init is not None:
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(init).items()}
        net.load_state_dict(state, strict=False)  # weights without a crop head load too
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    g = torch.Generator().manual_seed(seed)
    bar = tqdm(range(steps), desc="judge net", disable=not progress)
    last: dict[str, float] = {}
    for step in bar:
        idx = torch.randint(0, n_scenes, (batch_size,), generator=g)
        x = augment(scenes.images[idx].float() / 255, g)
        terms = judge_loss(net(x), pixel_targets(scenes, idx))
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            last = {k: round(float(v.detach()), 4) for k, v in terms.items()}
            bar.set_postfix(loss=last["loss"])
    unet_s = time.time() - t0 - render_s
    crop = train_crop_net(net.crop, scenes, crop_steps, lr=lr, seed=seed, progress=progress)
    report = {"n_scenes": n_scenes, "steps": steps, "batch_size": batch_size, "lr": lr,
              "seed": seed, "init": init, "render_seconds": render_s, "train_seconds": unet_s,
              "crop_seconds": time.time() - t0 - render_s - unet_s, "final_terms": last, **crop,
              "threads": torch.get_num_threads()}
    return net.eval(), report


def save_arrow_net(net: ArrowNet, path: str, report: dict) -> None:
    """Save weights as fp16 safetensors with the report as metadata (atomic)."""
    import json

    from safetensors.torch import save_file

    from gnm.io import atomic_write

    tensors = {k: v.half().contiguous() for k, v in net.state_dict().items()}
    meta = {"report": json.dumps(report)}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def main() -> None:
    """``python -m gnm.eval.arrow_net --out PATH``: render scenes, train and save the net."""
    import argparse
    import json

    p = argparse.ArgumentParser(description="train the Arrow Room judge's network")
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=int, default=12_000)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--crop-steps", type=int, default=3000)
    p.add_argument("--init", default=None, help="weights to start from (e.g. with --steps 0)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    net, report = train_arrow_net(args.scenes, args.steps, args.batch_size, seed=args.seed,
                                  crop_steps=args.crop_steps, init=args.init)
    save_arrow_net(net, args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
