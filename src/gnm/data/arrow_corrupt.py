"""Arrow Room scenes that break the rule in one known way, to validate an Arrow Room judge.

Each corruption starts from a valid layout of :class:`ArrowRoomGenerator` and changes one
thing (``KINDS``, with the verdict of :func:`gnm.data.arrow_room.rule_verdict` it must get):

``wrong_pointing``     the arrow turns toward one of the two objects that share a shape
                       (``wrong_target``)
``three_alike``        the unique object takes the shared shape (``three_alike``)
``all_different``      one of the pair takes the third shape (``no_pair``)
``mixed_materials``    one object gets the other material (``mixed_materials``)
``arrow_not_nearest``  the arrow and one of the others exchange floor positions; the arrow is
                       turned back to its target (``arrow_not_nearest``)
``missing_object``     one of the three non-arrow objects is removed (``wrong_count``)
``extra_object``       a fifth object (a sphere, cube or cylinder) joins the far half
                       (``wrong_count``)

A corrupted layout is kept only if every object in it is still enough visible and inside the
frame (:func:`~gnm.data.arrow_checks.visible_inside`); otherwise the next base layout of the
same index is tried; so is one whose valid layout points ambiguously
(:func:`~gnm.data.arrow_checks.pointing_gap` under ``MIN_POINTING_GAP``). Everything is a pure
function of ``(seed, split, index, kind)``.
"""

from __future__ import annotations

import math

import numpy as np

from gnm.data.arrow_checks import MIN_POINTING_GAP, pointing_gap, probe, visible_inside
from gnm.data.arrow_room import SIZE, ArrowRoomGenerator, Layout, annotate

KINDS: dict[str, str] = {
    "wrong_pointing": "wrong_target", "three_alike": "three_alike",
    "all_different": "no_pair", "mixed_materials": "mixed_materials",
    "arrow_not_nearest": "arrow_not_nearest", "missing_object": "wrong_count",
    "extra_object": "wrong_count"}


def _copy(layout: Layout) -> Layout:
    return Layout(*(np.array(getattr(layout, f), copy=True) for f in Layout.__dataclass_fields__))


def _aim(layout: Layout, k: int) -> None:
    dx, dy = layout.pos[0, k] - layout.pos[0, 0]
    layout.yaw[0, 0] = math.atan2(dy, dx)


def corrupt_layout(layout: Layout, kind: str, rng: np.random.Generator) -> Layout:
    """A copy of a one-scene ``layout`` (object 0 the arrow, valid) corrupted by ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(KINDS)}")
    lay = _copy(layout)
    target = int(lay.target[0])
    pair = [k for k in (1, 2, 3) if k != target]
    if kind == "wrong_pointing":
        _aim(lay, int(rng.choice(pair)))
    elif kind == "three_alike":
        lay.shape[0, target] = lay.shape[0, pair[0]]
    elif kind == "all_different":
        third = ({0, 1, 2} - {int(lay.shape[0, pair[0]]), int(lay.shape[0, target])}).pop()
        lay.shape[0, int(rng.choice(pair))] = third
    elif kind == "mixed_materials":
        mat = np.repeat(lay.material[:, None], 4, 1)
        k = int(rng.integers(0, 4))
        mat[0, k] = 1 - mat[0, k]
        lay.material = mat
    elif kind == "arrow_not_nearest":
        k = int(rng.choice([1, 2, 3]))
        lay.pos[0, [0, k]] = lay.pos[0, [k, 0]]
        _aim(lay, target)
    elif kind == "missing_object":
        lay.shape[0, int(rng.choice([1, 2, 3]))] = -1
    else:  # extra_object
        for _ in range(1000):
            xy = np.array([rng.uniform(-2.6, 2.6), rng.uniform(0.6, 3.2)])
            if np.linalg.norm(lay.pos[0] - xy, axis=-1).min() >= 2.6 * SIZE:
                break
        lay.shape = np.concatenate([lay.shape, [[int(rng.integers(0, 3))]]], 1)
        lay.colour = np.concatenate([lay.colour, [[int(rng.integers(0, 8))]]], 1)
        lay.pos = np.concatenate([lay.pos, xy[None, None]], 1)
        lay.yaw = np.concatenate([lay.yaw, [[rng.uniform(0, math.pi / 2)]]], 1)
    return lay


def corrupted_batch(gen: ArrowRoomGenerator, indices, kind: str) -> tuple[np.ndarray, list]:
    """Corrupted scenes for ``indices``: images uint8 ``[B, S, S, 3]`` and annotations (their
    ``verdict`` is the rule's on the corrupted ground truth, ``corruption`` the kind)."""
    code = list(KINDS).index(kind) if kind in KINDS else -1
    images, notes = [], []
    for i in indices:
        for attempt in range(64):
            rng = np.random.default_rng([gen.seed, 11, code, int(i), attempt])
            base = gen.layout(int(i), attempt)
            if pointing_gap(base)[0] < MIN_POINTING_GAP and attempt < 63:
                continue  # the valid scene it corrupts must point unambiguously
            lay = corrupt_layout(base, kind, rng)
            if visible_inside(lay, probe(lay, gen.size, gen.supersample))[0]:
                break
        out = gen.render(lay)
        note = annotate(int(i), gen.split, lay, out, attempt)
        note["corruption"] = kind
        images.append((out["image"][0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        notes.append(note)
    return np.stack(images), notes
