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
``stroke_digit``      one digit is replaced by a pen scribble (:func:`scribble`): a continuous
                      random-walk stroke inside the digit's ink box, drawn until its ink mass
                      matches the digit's, so it has a digit's extent and mass but no shape
``stroke_digits_3``   the same for three digits of the scene
``half_erased``       one digit loses the half of its ink on one side of its ink box's middle
                      line, cut across the box's longer side (top or bottom half of a tall digit,
                      left or right half of a wide one: a left/right cut of a tall digit often
                      leaves a fair digit, e.g. the right half of an 8 is a 3)
``merged_digits``     one cell holds two digits of different classes overlaid 2-5 px apart (at
                      128 px), so they form one blob of a digit's size; the second digit must
                      add ink outside the first worth 30% of its ink (a 1 drawn inside an 8 is
                      still an 8)
``wrong_class_cell``  one digit is replaced by an MNIST digit of a class that does not belong in
                      its cell: MNIST-4, a class absent from the scene; MNIST-10 (where every
                      class is present), a class of another quadrant's class set
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gnm.data.scenes import MNIST10_SETS, SceneGenerator, paste_fields

_NEW = ("stroke_digit", "stroke_digits_3", "half_erased", "merged_digits", "wrong_class_cell")
KINDS: dict[str, tuple[str, ...]] = {
    "mnist4": ("wrong_order", "broken_symmetry", "missing_digit", "duplicated_class",
               "garbled_digit", "blurred_digit", *_NEW),
    "mnist10": ("wrong_order", "broken_symmetry", "missing_digit", "duplicated_class",
                "non_diagonal_swap", "garbled_digit", "blurred_digit", *_NEW),
}


def _pen(shape: tuple[int, int], segments: list[tuple[float, float, float, float]],
         radius: float) -> np.ndarray:
    """Ink in [0, 1] of a round pen of ``radius`` px drawn along ``(x0, y0, x1, y1)`` segments
    (pixel-centre coordinates), with a one-pixel soft edge."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) + 0.5
    d = np.full(shape, np.inf)
    for x0, y0, x1, y1 in segments:
        vx, vy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * vx + (yy - y0) * vy) / max(vx * vx + vy * vy, 1e-9), 0, 1)
        d = np.minimum(d, np.hypot(xx - x0 - t * vx, yy - y0 - t * vy))
    return np.clip(radius + 0.5 - d, 0.0, 1.0)


def scribble(rng: np.random.Generator, patch: np.ndarray, box) -> np.ndarray:
    """A pen scribble replacing the digit ``patch`` (uint8 ``[P, P]``, ink box ``box`` =
    ``(x0, y0, x1, y1)``; a box narrower than 0.6 of its height, like a 1's, is widened to
    that): one continuous wobbly stroke (steps of 2-4 px at 28 px per field, each heading for
    the next of random waypoints in the box with N(0, 50°) noise) drawn with a 1-1.5 px pen
    until its ink mass reaches the digit's. uint8 ``[P, P]``."""
    p = patch.shape[0]
    s = p / 28
    x0, y0, x1, y1 = (float(v) for v in box)
    grow = max(0.0, 0.6 * (y1 - y0) - (x1 - x0)) / 2
    x0, x1 = max(0.0, x0 - grow), min(float(p), x1 + grow)
    target = patch.astype(np.float64).sum() / 255.0
    radius = rng.uniform(1.0, 1.5) * s
    x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
    ink = np.zeros((p, p))
    wx, wy = x, y
    for _ in range(400):
        while np.hypot(wx - x, wy - y) < 3 * s:  # next waypoint, well away from the pen
            wx, wy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        heading = np.arctan2(wy - y, wx - x) + rng.normal(0.0, np.radians(50))
        step = rng.uniform(2.0, 4.0) * s
        nx = min(max(x + step * np.cos(heading), x0), x1)
        ny = min(max(y + step * np.sin(heading), y0), y1)
        ink = np.maximum(ink, _pen((p, p), [(x, y, nx, ny)], radius))
        x, y = nx, ny
        if ink.sum() >= target:
            break
    ink = ndimage.gaussian_filter(ink, 0.5 * s)
    return np.clip(ink / max(ink.max(), 1e-6) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _visible_overlay(own: np.ndarray, other: np.ndarray, dx: int, dy: int) -> bool:
    """Whether ``other`` placed ``(dx, dy)`` px from ``own`` (uint8 fields) adds ink pixels
    (>= 32) outside ``own``'s ink amounting to at least 30% of it."""
    p, m = own.shape[0], max(abs(dx), abs(dy))
    a = np.zeros((p + 2 * m, p + 2 * m), bool)
    b = a.copy()
    a[m:m + p, m:m + p] = own >= 32
    b[m + dy:m + dy + p, m + dx:m + dx + p] = other >= 32
    return (b & ~a).sum() >= 0.3 * a.sum()


def _second_digit(gen: SceneGenerator, rng: np.random.Generator, item, label: int):
    """``(patch, x, y)`` of a digit of another class 2-5 px (at 128 px) from the field of
    ``item`` (``[pool_index, quadrant, x, y]``) that visibly adds to it
    (:func:`_visible_overlay`; the first of 20 draws that does, else the last draw)."""
    scale, size, p = gen.size / 128, gen.size, gen.patch
    for _ in range(20):
        other = gen.pick(rng, int(rng.choice(sorted(set(range(10)) - {label}))))
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 5.0) * scale
        x = int(np.clip(round(item[2] + dist * np.cos(angle)), 0, size - p))
        y = int(np.clip(round(item[3] + dist * np.sin(angle)), 0, size - p))
        if _visible_overlay(gen.pool.patches[item[0]], gen.pool.patches[other],
                            x - item[2], y - item[3]):
            break
    return gen.pool.patches[other], x, y


def half_erase(rng: np.random.Generator, patch: np.ndarray, box) -> np.ndarray:
    """``patch`` with its ink on one side of the ink box's middle line zeroed, the line cut
    across the box's longer side (which of the two halves: at random)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    out = patch.copy()
    first = rng.random() < 0.5
    if y1 - y0 >= x1 - x0:  # tall: erase the top or bottom half
        mid = (y0 + y1) // 2
        if first:
            out[:mid] = 0
        else:
            out[mid:] = 0
    else:
        mid = (x0 + x1) // 2
        if first:
            out[:, :mid] = 0
        else:
            out[:, mid:] = 0
    return out


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
    extra = []  # further (patch, x, y) fields
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
    elif kind in ("stroke_digit", "stroke_digits_3"):
        victims = [victim] if kind == "stroke_digit" else rng.choice(len(items), 3, replace=False)
        for v in victims:
            k = items[v][0]
            patches[v] = scribble(rng, pool.patches[k], pool.ink[k])
    elif kind == "half_erased":
        patches[victim] = half_erase(rng, patches[victim], pool.ink[items[victim][0]])
    elif kind == "merged_digits":
        extra.append(_second_digit(gen, rng, items[victim], labels[victim]))
    elif kind == "wrong_class_cell":
        if rule == "mnist4":
            wrong = sorted(set(range(10)) - set(labels))
        else:
            own = next(s for s in MNIST10_SETS if labels[victim] in s)
            wrong = sorted(set(range(10)) - set(own))
        patches[victim] = pool.patches[gen.pick(rng, int(rng.choice(wrong)))]
    return paste_fields(size, [(patches[i], items[i][2], items[i][3]) for i in patches] + extra)


def corrupted_batch(gen: SceneGenerator, indices, kind: str) -> np.ndarray:
    """uint8 ``[B, S, S]`` of :func:`corrupted_scene` for ``indices``."""
    return np.stack([corrupted_scene(gen, int(i), kind) for i in indices])
