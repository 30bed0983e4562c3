"""The Arrow Room judge's shape classifier: a small CNN on a ``CROP`` × ``CROP`` window around
each object found by :class:`~gnm.eval.arrow_net.ArrowNet`.

Telling a yawed cube from a cylinder takes the object's own edges and shading; the per-pixel
shape maps of the U-Net, trained with every floor pixel in the loss, confused the two (about
half of the cylinder pixels of val scenes read as cube). So the shape of an object is read
from a window of the 64-px image centred on its floor anchor (the heat-map peak that found
it), by :class:`CropNet`, trained on windows around the true anchors of the objects of
rendered scenes (jittered by up to ``JITTER`` px, images augmented as the U-Net's). Windows
centred on the centroid of an object's assigned pixels were tried first: where one object
hides part of another the pixel split moves that centroid, and the classifier read arrows.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

CROP = 20  # px at 64 px: an object is 10-16 px wide
JITTER = 2.0  # px: training windows are centred within this of the true anchor
N_SHAPES = 4  # sphere, cube, cylinder, arrow (gnm.data.raycast.SHAPES)


class CropNet(nn.Module):
    """``forward(x [N, 3, 20, 20])`` in [0, 1] → shape logits ``[N, 4]``; ~0.1M parameters."""

    def __init__(self) -> None:
        super().__init__()

        def conv(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True))

        self.features = nn.Sequential(conv(3, 32), conv(32, 32), nn.MaxPool2d(2),  # 10 px
                                      conv(32, 64), conv(64, 64), nn.MaxPool2d(2),  # 5 px
                                      nn.Flatten(), nn.Linear(64 * 25, 128), nn.ReLU(inplace=True))
        self.head = nn.Linear(128, N_SHAPES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5))


def windows(images: torch.Tensor, centres: torch.Tensor, image_of: torch.Tensor,
            size: int = CROP) -> torch.Tensor:
    """Windows ``[M, C, size, size]`` of ``images [B, C, S, S]`` centred on ``centres [M, 2]``
    (col, row px, continuous; rounded to the pixel grid) of images ``image_of [M]`` (long);
    the image is extended by its edge pixels where a window leaves it."""
    if len(centres) == 0:
        return images.new_zeros(0, images.shape[1], size, size)
    half = size // 2
    padded = F.pad(images, (half, half, half, half), mode="replicate")
    col = centres[:, 0].floor().long().clamp(0, images.shape[-1] - 1)
    row = centres[:, 1].floor().long().clamp(0, images.shape[-2] - 1)
    ar = torch.arange(size)
    rows = (row[:, None] + ar)[:, :, None]  # [M, size, 1] in padded coordinates
    cols = (col[:, None] + ar)[:, None, :]  # [M, 1, size]
    return padded[image_of[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def train_crop_net(net: CropNet, scenes, steps: int = 3000, batch_size: int = 256,
                   lr: float = 2e-3, seed: int = 0, min_pixels: int = 6,
                   progress: bool = True) -> dict:
    """Train ``net`` on windows around every object of ``scenes``
    (:class:`~gnm.eval.arrow_net.SceneLabels`) with at least ``min_pixels`` visible pixels;
    returns a report (final loss and training accuracy)."""
    from gnm.eval.arrow_net import augment

    keep = (scenes.pixels >= min_pixels) & (scenes.shape >= 0)
    image_of, slot = torch.nonzero(keep, as_tuple=True)
    labels = scenes.shape[image_of, slot].long()
    centres = scenes.anchor[image_of, slot]  # the floor anchors the judge finds
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    net.train()
    last = {}
    for step in tqdm(range(steps), desc="judge crops", disable=not progress):
        pick = torch.randint(0, len(labels), (batch_size,), generator=g)
        imgs, inverse = torch.unique(image_of[pick], return_inverse=True)
        x = augment(scenes.images[imgs].float() / 255, g)
        jitter = (torch.rand(batch_size, 2, generator=g) * 2 - 1) * JITTER
        logits = net(windows(x, centres[pick] + jitter, inverse))
        loss = F.cross_entropy(logits, labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            last = {"loss": round(float(loss.detach()), 4),
                    "accuracy": round(float((logits.argmax(1) == labels[pick]).float().mean()),
                                      4)}
    net.eval()
    return {"crop_objects": int(len(labels)), "crop_steps": steps,
            "crop_batch_size": batch_size, "crop_final": last}
