"""Scenes that break their dataset's rule in one known way, to validate the S-Acc judge.

Each corruption starts from a real scene's layout (:meth:`SceneGenerator.layout`) and changes
one thing; the judge must reject the result. Kinds (``KINDS``):

``wrong_order``       MNIST-4: two quadrants exchange digits; MNIST-10: two digits of different
                      class sets exchange places
``broken_symmetry``   MNIST-4: one digit moves 12-20 px (at 128 px) inside its quadrant;
                      MNIST-10: the 8 (or 9) moves 12-20 px away from the 0's (1's) position
``missing_digit``     one digit is removed
``duplicated_class``  one digit is replaced by another MNIST digit of a class already present
``non_diagonal_swap`` MNIST-10: the {0,1} and {2,3,4} quadrants exchange contents (adjacent)
``garbled_digit``     one digit's field is cut into 4×4 tiles that are shuffled
``blurred_digit``     one digit is blurred with a Gaussian of σ = 3 px (at 128 px)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gnm.data.scenes import SceneGenerator, paste_fields

KINDS: dict[str, tuple[str, ...]] = {
    "mnist4": ("wrong_order", "broken_symmetry", "missing_digit", "duplicated_class",
               "garbled_digit", "blurred_digit"),
    "mnist10": ("wrong_order", "broken_symmetry", "missing_digit", "duplicated_class",
                "non_diagonal_swap", "garbled_digit", "blurred_digit"),
}


def _shift_inside(rng: np.random.Generator, x: int, y: int, lo: tuple[int, int], span: int,
                  scale: float) -> tuple[int, int]:
    """Move ``(x, y)`` 12-20 px (scaled) along one axis, staying in ``[lo, lo + span]``."""
    for _ in range(100):
        d = int(round(rng.uniform(12, 20) * scale)) * (1 if rng.random() < 0.5 else -1)
        axis = int(rng.integers(2))
        nx, ny = (x + d, y) if axis == 0 else (x, y + d)
        if lo[0] <= nx <= lo[0] + span and lo[1] <= ny <= lo[1] + span:
            return nx, ny
    # The quadrant always has room for a 12-px move along the axis with more space.
    return (lo[0] if x - lo[0] > span / 2 else lo[0] + span), y


def corrupted_scene(gen: SceneGenerator, index: int, kind: str) -> np.ndarray:
    """Scene ``index`` of ``gen`` with corruption ``kind``: uint8 ``[S, S]``.

    ``kind`` must be one of ``KINDS`` for the scene's rule (MNIST-4-10 scenes use their own).
    """
    rule, placements, _ = gen.layout(index)
    if kind not in KINDS[rule]:
        raise ValueError(f"corruption {kind!r} is not defined for {rule} scenes")
    rng = gen.rng(index, stream=1)
    pool, size, quad, p = gen.pool, gen.size, gen.quad, gen.patch
    scale = size / 128
    items = [[int(k), int(q), int(x), int(y)] for k, q, x, y in placements]
    patches = {i: pool.patches[it[0]] for i, it in enumerate(items)}
    victim = int(rng.integers(len(items)))
    labels = [int(pool.labels[it[0]]) for it in items]
    if kind == "wrong_order":
        if rule == "mnist4":
            a, b = rng.choice(4, 2, replace=False)
        else:  # two digits from different class sets (hence different quadrants)
            while True:
                a, b = rng.choice(len(items), 2, replace=False)
                if items[a][1] != items[b][1]:
                    break
        patches[a], patches[b] = patches[b], patches[a]
    elif kind == "broken_symmetry":
        if rule == "mnist10":
            victim = labels.index(8 if rng.random() < 0.5 else 9)
        x, y, q = items[victim][2], items[victim][3], items[victim][1]
        origin = [(0, 0), (quad, 0), (quad, quad), (0, quad)][q]
        items[victim][2], items[victim][3] = _shift_inside(rng, x, y, origin, quad - p, scale)
    elif kind == "missing_digit":
        del patches[victim]
    elif kind == "duplicated_class":
        others = sorted(set(labels) - {labels[victim]})
        patches[victim] = pool.patches[gen.pick(rng, int(rng.choice(others)))]
    elif kind == "non_diagonal_swap":
        qa = items[labels.index(0)][1]  # quadrant of {0,1}
        qb = items[labels.index(2)][1]  # quadrant of {2,3,4}, adjacent to qa
        origins = [(0, 0), (quad, 0), (quad, quad), (0, quad)]
        for it in items:
            if it[1] in (qa, qb):
                src, dst = (qa, qb) if it[1] == qa else (qb, qa)
                it[2] += origins[dst][0] - origins[src][0]
                it[3] += origins[dst][1] - origins[src][1]
    elif kind == "garbled_digit":
        t = p // 4
        core = patches[victim][: 4 * t, : 4 * t]
        tiles = core.reshape(4, t, 4, t).transpose(0, 2, 1, 3).reshape(16, t, t)
        tiles = tiles[rng.permutation(16)]
        garbled = patches[victim].copy()
        shuffled = tiles.reshape(4, 4, t, t).transpose(0, 2, 1, 3).reshape(4 * t, 4 * t)
        garbled[: 4 * t, : 4 * t] = shuffled
        patches[victim] = garbled
    elif kind == "blurred_digit":
        rest = paste_fields(size, [(patches[i], it[2], it[3])
                               for i, it in enumerate(items) if i != victim])
        alone = paste_fields(size, [(patches[victim], items[victim][2], items[victim][3])])
        alone = alone.astype(float)
        peak = alone.max()
        blurred = ndimage.gaussian_filter(alone, sigma=3.0 * scale)
        blurred *= peak / max(blurred.max(), 1e-6)
        return np.maximum(rest, np.clip(blurred + 0.5, 0, 255).astype(np.uint8))
    return paste_fields(size, [(patches[i], items[i][2], items[i][3]) for i in patches])


def corrupted_batch(gen: SceneGenerator, indices, kind: str) -> np.ndarray:
    """uint8 ``[B, S, S]`` of :func:`corrupted_scene` for ``indices``."""
    return np.stack([corrupted_scene(gen, int(i), kind) for i in indices])
