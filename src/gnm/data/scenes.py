"""MNIST scene datasets of the paper (SPEC §3): MNIST-4, MNIST-10 and their mixture MNIST-4-10.

Every scene is a pure function of ``(dataset, seed, split, index)``: generation draws from a
``numpy`` PCG64 stream seeded with those four numbers, so any index can be made on demand (an
infinite on-the-fly dataset) or exported, with identical results.

Geometry (``S`` = image size in pixels, 128 by default): quadrants are ``S/2`` wide; an MNIST
28×28 digit field is scaled to ``P = round(28·S/128)`` pixels (28 at 128 px, so the ink is about
20 px as in the paper; 14 at 64 px). Quadrants are numbered clockwise from the top-left:
0 = top-left, 1 = top-right, 2 = bottom-right, 3 = bottom-left.

Rules
-----
* **mnist4**: start class ``d ~ U{0..6}``; quadrants 0,1,2,3 hold classes d, d+1, d+2, d+3. The
  top-left digit's field is placed at a uniform offset ``(ox, oy)`` inside its quadrant; the others
  are its mirror images about the vertical and horizontal centre lines, so their fields are exactly
  symmetric (MNIST digits are centred by mass in their field, so the ink is too, within ~1 px).
* **mnist10**: class sets Q1={0,1}, Q2={2,3,4}, Q3={8,9}, Q4={5,6,7} start in quadrants 0,1,2,3.
  Digits inside a quadrant are placed uniformly with no overlap of their nominal 20/28 ink areas
  (rejection sampling). Q1 and Q3 share within-quadrant offsets (0 and 8 at one, 1 and 9 at the
  other); Q2 and Q4 are placed independently. Then two independent fair coins swap Q1↔Q3 and
  Q2↔Q4 (each a diagonal swap), so {0,1} and {8,9} always sit on one diagonal, {2,3,4} and
  {5,6,7} on the other.
* **mnist4_10**: a fair coin picks the mnist4 or the mnist10 rule per scene.

Splits: ``train`` digits come from MNIST train images 0..54,999, ``val`` from 55,000..59,999 and
``test`` from the MNIST test set, so no digit crosses splits.

Ground truth per object: ``box`` ``[x0, y0, x1, y1]`` in pixels (x1, y1 exclusive) of the ink
(pixels >= :data:`INK_THRESHOLD`), ``class``, ``quadrant``, ``source`` (index into its MNIST array).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gnm.data.registry import register_dataset
from gnm.errors import GNMError

DATASETS: tuple[str, ...] = ("mnist4", "mnist10", "mnist4_10")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: MNIST train images from this index on form the validation pool.
VAL_START = 55_000
#: A pixel at or above this uint8 value counts as ink for ground-truth boxes.
INK_THRESHOLD = 32
#: Most objects a scene can hold (MNIST-10).
MAX_OBJECTS = 10
#: MNIST-10 class sets per starting quadrant (clockwise from top-left).
MNIST10_SETS: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3, 4), (8, 9), (5, 6, 7))

_DATASET_CODE = {name: i for i, name in enumerate(DATASETS)}
_SPLIT_CODE = {name: i for i, name in enumerate(SPLITS)}


def check_size(size: int) -> int:
    """Validate an image size in pixels: a multiple of 16, at least 32."""
    if not isinstance(size, int) or size < 32 or size % 16:
        raise GNMError(f"image size {size!r} is not allowed; use a multiple of 16 that is at "
                       "least 32 (e.g. --size 128 or --size 64).")
    return size


def check_dataset(name: str) -> str:
    """Validate a scene dataset name."""
    if name not in DATASETS:
        raise GNMError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return name


def check_split(split: str) -> str:
    """Validate a split name."""
    if split not in SPLITS:
        raise GNMError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    return split


def patch_size(size: int) -> int:
    """Side in pixels of a scaled 28×28 MNIST field in an image of ``size`` pixels."""
    return max(4, round(28 * size / 128))


@dataclass
class DigitPool:
    """Digits of one split, scaled for one image size.

    ``patches`` uint8 ``[N, P, P]``; ``labels`` int64 ``[N]``; ``ink`` int32 ``[N, 4]`` ink box
    ``[x0, y0, x1, y1]`` inside the patch (exclusive ends); ``sources`` int64 ``[N]`` index of
    each digit in its MNIST array; ``by_class[c]`` positions (into this pool) of class ``c``.
    """

    patches: np.ndarray
    labels: np.ndarray
    ink: np.ndarray
    sources: np.ndarray
    by_class: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def build(cls, images: np.ndarray, labels: np.ndarray, sources: np.ndarray,
              size: int) -> DigitPool:
        """Scale ``images`` uint8 ``[N, 28, 28]`` to patches for ``size``-pixel scenes."""
        p = patch_size(size)
        if p == images.shape[-1]:
            patches = np.ascontiguousarray(images, dtype=np.uint8)
        else:
            t = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
            mode = "area" if p < images.shape[-1] else "bilinear"
            kwargs = {} if mode == "area" else {"align_corners": False}
            t = F.interpolate(t, size=(p, p), mode=mode, **kwargs)
            patches = t.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()
        mask = patches >= INK_THRESHOLD
        rows, cols = mask.any(2), mask.any(1)  # [N, P]
        ink = np.zeros((len(patches), 4), np.int32)
        has = rows.any(1)
        ink[has, 0] = cols[has].argmax(1)
        ink[has, 1] = rows[has].argmax(1)
        ink[has, 2] = p - cols[has][:, ::-1].argmax(1)
        ink[has, 3] = p - rows[has][:, ::-1].argmax(1)
        labels = labels.astype(np.int64)
        by_class = [np.flatnonzero(labels == c) for c in range(10)]
        empty = [c for c in range(10) if len(by_class[c]) == 0]
        if empty:
            raise GNMError(f"the digit source has no digit of class {empty}; scenes need all ten.")
        return cls(patches, labels, ink, sources.astype(np.int64), by_class)


def split_digits(mnist: Any, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]``, labels ``[N]`` and source indices ``[N]`` of a split's digits.

    ``mnist`` is a :class:`gnm.data.mnist.MNIST` (or anything with the same four arrays).
    """
    check_split(split)
    if split == "test":
        n = len(mnist.test_images)
        return mnist.test_images, mnist.test_labels, np.arange(n)
    n = len(mnist.train_images)
    # With a short (fake) train set keep the same 55:5 proportion.
    cut = VAL_START if n > VAL_START else max(1, n * 11 // 12)
    sl = slice(0, cut) if split == "train" else slice(cut, n)
    return mnist.train_images[sl], mnist.train_labels[sl], np.arange(n)[sl]


def paste_fields(size: int, items) -> np.ndarray:
    """Paste ``(patch, x, y)`` square fields into a black uint8 ``[size, size]`` image; where
    fields overlap the brighter pixel wins (max compositing). ``(x, y)``: top-left pixel."""
    image = np.zeros((size, size), np.uint8)
    for patch, x, y in items:
        p = patch.shape[0]
        region = image[y:y + p, x:x + p]
        np.maximum(region, patch, out=region)
    return image


@dataclass
class Scene:
    """One generated scene: ``image`` uint8 ``[S, S]`` and its ground truth ``annotation``."""

    image: np.ndarray
    annotation: dict[str, Any]


class SceneGenerator:
    """Makes scenes of one dataset/split/size/seed; ``generator[i]`` is scene ``i``.

    Args:
        dataset: ``mnist4``, ``mnist10`` or ``mnist4_10``.
        split: ``train``, ``val`` or ``test`` (which MNIST digits are used).
        size: image side in pixels (multiple of 16, >= 32).
        seed: base seed; scene ``i`` depends only on ``(dataset, seed, split, i)``.
        mnist: the MNIST arrays (:func:`gnm.data.mnist.load_mnist` is called when omitted).
        data_dir: where to find or fetch MNIST when ``mnist`` is omitted.
    """

    def __init__(self, dataset: str, split: str = "train", size: int = 128, seed: int = 0,
                 mnist: Any = None, data_dir: str | None = None) -> None:
        self.dataset = check_dataset(dataset)
        self.split = check_split(split)
        self.size = check_size(size)
        self.seed = int(seed)
        if mnist is None:
            from gnm.data.mnist import load_mnist

            mnist = load_mnist(data_dir)
        self.pool = DigitPool.build(*split_digits(mnist, split), size=size)
        self.patch = patch_size(size)
        self.quad = size // 2

    # ------------------------------------------------------------------ public
    def __getitem__(self, index: int) -> Scene:
        rule, placements, params = self.layout(index)
        return self._render(int(index), rule, placements, params)

    def layout(self, index: int) -> tuple[str, list[tuple[int, int, int, int]], dict[str, Any]]:
        """Scene ``index`` before rendering: ``(rule, placements, params)``.

        ``placements``: one ``(pool_index, quadrant, x, y)`` per digit, ``(x, y)`` the top-left
        pixel of its ``P×P`` field; ``pool_index`` indexes :attr:`pool`.
        """
        index = int(index)
        if index < 0:
            raise GNMError(f"scene index {index} is negative; indices start at 0.")
        rng = self.rng(index)
        rule = self.dataset
        if rule == "mnist4_10":
            rule = "mnist4" if rng.random() < 0.5 else "mnist10"
        placements, params = self._mnist4(rng) if rule == "mnist4" else self._mnist10(rng)
        return rule, placements, params

    def rng(self, index: int, stream: int = 0) -> np.random.Generator:
        """The random stream of scene ``index`` (``stream`` > 0: extra streams for its users)."""
        key = [self.seed, _DATASET_CODE[self.dataset], _SPLIT_CODE[self.split], int(index)]
        return np.random.default_rng(key + ([stream] if stream else []))

    def pick(self, rng: np.random.Generator, cls: int) -> int:
        """A random pool index of a digit of class ``cls``."""
        members = self.pool.by_class[cls]
        return int(members[rng.integers(len(members))])

    def batch(self, indices: Any) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Scenes for ``indices``: images uint8 ``[B, S, S]`` and a list of annotations."""
        scenes = [self[i] for i in indices]
        return np.stack([s.image for s in scenes]), [s.annotation for s in scenes]

    # ------------------------------------------------------------------ rules
    def _mnist4(self, rng: np.random.Generator):
        d = int(rng.integers(0, 7))
        span = self.quad - self.patch  # offsets 0..span keep the field inside its quadrant
        ox, oy = (int(v) for v in rng.integers(0, span + 1, size=2))
        far_x, far_y = self.size - ox - self.patch, self.size - oy - self.patch
        corners = [(ox, oy), (far_x, oy), (far_x, far_y), (ox, far_y)]  # clockwise from TL
        placements = [(self.pick(rng, d + q), q, x, y) for q, (x, y) in enumerate(corners)]
        return placements, {"start_class": d, "offset": [ox, oy]}

    def _offsets(self, rng: np.random.Generator, k: int) -> list[tuple[int, int]]:
        """``k`` offsets in a quadrant whose nominal ink squares (20/28 of a field) are disjoint."""
        span = self.quad - self.patch
        margin = round(self.patch * 4 / 28)  # nominal ink = field minus 4/28 on each side
        ink = self.patch - 2 * margin
        for _ in range(100):  # 32 candidate layouts per draw; the first valid one wins
            xy = rng.integers(0, span + 1, size=(32, k, 2))
            gaps = np.abs(xy[:, :, None, :] - xy[:, None, :, :]).max(-1)  # Chebyshev [32, k, k]
            gaps[:, np.arange(k), np.arange(k)] = ink
            ok = (gaps >= ink).all((1, 2))
            if ok.any():
                return [(int(x), int(y)) for x, y in xy[ok.argmax()]]
        raise RuntimeError(f"could not place {k} digits in a {self.quad}px quadrant")

    def _mnist10(self, rng: np.random.Generator):
        q13 = self._offsets(rng, 2)
        local = [q13, self._offsets(rng, 3), q13, self._offsets(rng, 3)]
        swap13, swap24 = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        target = [2 if swap13 else 0, 3 if swap24 else 1, 0 if swap13 else 2, 1 if swap24 else 3]
        origins = [(0, 0), (self.quad, 0), (self.quad, self.quad), (0, self.quad)]
        placements = []
        for qset, classes in enumerate(MNIST10_SETS):
            q = target[qset]
            x0, y0 = origins[q]
            for cls, (ox, oy) in zip(classes, local[qset], strict=True):
                placements.append((self.pick(rng, cls), q, x0 + ox, y0 + oy))
        params = {"swap_13": swap13, "swap_24": swap24, "q13_offsets": [list(o) for o in q13]}
        return placements, params

    # ------------------------------------------------------------------ pixels
    def _render(self, index: int, rule: str, placements, params) -> Scene:
        image = paste_fields(self.size, [(self.pool.patches[k], x, y)
                                         for k, _, x, y in placements])
        boxes, classes, quadrants, sources = [], [], [], []
        for k, q, x, y in placements:
            ix0, iy0, ix1, iy1 = self.pool.ink[k]
            boxes.append([x + int(ix0), y + int(iy0), x + int(ix1), y + int(iy1)])
            classes.append(int(self.pool.labels[k]))
            quadrants.append(q)
            sources.append(int(self.pool.sources[k]))
        annotation = {
            "index": index, "dataset": self.dataset, "split": self.split, "rule": rule,
            "boxes": boxes, "classes": classes, "quadrants": quadrants, "sources": sources,
            "params": params,
        }
        return Scene(image, annotation)


def target_tensors(annotation: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Fixed-size tensors of an annotation, padded to :data:`MAX_OBJECTS`.

    ``boxes`` float32 ``[10, 4]`` pixels (zeros pad), ``classes`` int64 ``[10]`` (-1 pad),
    ``n_objects`` int64 scalar.
    """
    n = len(annotation["classes"])
    boxes = torch.zeros(MAX_OBJECTS, 4)
    classes = torch.full((MAX_OBJECTS,), -1, dtype=torch.int64)
    if n:
        boxes[:n] = torch.tensor(annotation["boxes"], dtype=torch.float32)
        classes[:n] = torch.tensor(annotation["classes"], dtype=torch.int64)
    return {"boxes": boxes, "classes": classes, "n_objects": torch.tensor(n)}


class SceneDataset(torch.utils.data.Dataset):
    """On-the-fly scenes as a map-style ``Dataset``: nothing is written to disk.

    Item ``i`` is a dict: ``image`` float32 ``[1, S, S]`` in [0, 1], plus :func:`target_tensors`.
    ``length`` only bounds what a sampler sees; any index is valid, so a large ``length`` acts
    as an infinite stream.
    """

    def __init__(self, dataset: str, split: str = "train", size: int = 128, seed: int = 0,
                 length: int = 1_000_000, mnist: Any = None, data_dir: str | None = None) -> None:
        self.generator = SceneGenerator(dataset, split, size, seed, mnist=mnist, data_dir=data_dir)
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene = self.generator[index]
        image = torch.from_numpy(scene.image).unsqueeze(0).float().div_(255.0)
        return {"image": image, **target_tensors(scene.annotation)}


def _build(data: Any, split: str, seed: int, mnist: Any = None) -> SceneDataset:
    """The registry's builder of the three MNIST scene datasets (gnm.data.registry)."""
    return SceneDataset(data.dataset, split, data.size, seed, mnist=mnist,
                        data_dir=data.data_dir)


for _name in DATASETS:
    register_dataset(_name, _build, channels=1)
