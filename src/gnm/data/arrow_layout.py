"""Arrow Room layouts: what a scene holds before it is rendered (:mod:`gnm.data.arrow_room`).

The palette (CLEVR's eight colours, two materials), the camera and its jitter, the placement
of the four objects that makes a scene follow the rule (the arrow nearest and pointing at the
object whose shape is unique), and :func:`choose_palette`, which narrows the colours and shapes
a scene may draw. Everything here is numpy and a pure function of the random stream it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gnm.data.raycast import ARROW, SHAPES
from gnm.errors import GNMError

#: CLEVR's palette (RGB 0-255), in this order
COLOURS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
    "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208),
    "yellow": (255, 238, 51)}
MATERIALS: tuple[str, ...] = ("rubber", "metal")
SIZE = 0.6
FOV = 49.0
DISTANCE, ELEVATION, LOOK_AT = 8.6, 28.0, (0.0, 0.4, 0.0)


@dataclass
class Layout:
    """Scenes before rendering, as arrays over a batch ``B`` of four objects each (object 0 is
    the arrow): ``shape [B, 4]`` (indices into :data:`SHAPES`), ``colour [B, 4]`` (into
    :data:`COLOURS`), ``material [B]`` (into :data:`MATERIALS`; ``[B, 4]`` one per object),
    ``pos [B, 4, 2]`` floor
    positions, ``yaw [B, 4]`` radians, ``target [B]`` (object index the arrow points at),
    ``eye``, ``look_at`` ``[B, 3]`` the camera."""

    shape: np.ndarray
    colour: np.ndarray
    material: np.ndarray
    pos: np.ndarray
    yaw: np.ndarray
    target: np.ndarray
    eye: np.ndarray
    look_at: np.ndarray


def sample_camera(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A jittered camera: ``eye`` and ``look_at`` ``[3]`` (elevation ``ELEVATION`` ± 1°, the
    look-at point ``LOOK_AT`` ± 0.15 units on the floor, distance ``DISTANCE``)."""
    el = math.radians(ELEVATION + rng.uniform(-1, 1))
    look = np.array(LOOK_AT) + np.r_[rng.uniform(-0.15, 0.15, 2), 0.0]
    return look + DISTANCE * np.array([0.0, -math.cos(el), math.sin(el)]), look


def choose_palette(colours: Sequence[str] = (), shapes: Sequence[str] = ()
                   ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The indices into :data:`COLOURS` and :data:`SHAPES` that scenes draw from, given
    ``colours`` and ``shapes`` as names (empty: all 8 colours; all three non-arrow shapes,
    sphere, cube and cylinder; the arrow is always drawn). Unknown or repeated names, or fewer
    than two shapes (the rule needs a shape two objects share and another), raise GNMError."""
    others = [s for s in SHAPES if s != SHAPES[ARROW]]

    def pick(names: Sequence[str], known: list[str], key: str, what: str) -> tuple[int, ...]:
        names = list(names)
        for name in names:
            if name not in known:
                raise GNMError(f"unknown {what} {name!r} in data.{key}; the Arrow "
                               f"Room's {what}s{' besides the arrow' * (key == 'shapes')} are "
                               f"{', '.join(known)}.")
            if names.count(name) > 1:
                raise GNMError(f"data.{key} lists {name!r} twice; give each {what} "
                               "once.")
        return tuple(known.index(n) for n in names) if names else tuple(range(len(known)))

    colour_ids = pick(colours, list(COLOURS), "colours", "colour")
    shape_ids = tuple(SHAPES.index(others[i]) for i in pick(shapes, others, "shapes", "shape"))
    if len(shape_ids) < 2:
        raise GNMError(f"data.shapes {list(shapes)} has one shape; the rule needs "
                       "two (one that two objects share, another for the arrow's target): "
                       f"name two or three of {', '.join(others)}.")
    return colour_ids, shape_ids


_ALL = choose_palette()


def sample_layout(rng: np.random.Generator,
                  palette: tuple[tuple[int, ...], tuple[int, ...]] = _ALL) -> Layout:
    """One scene that follows the rule (before the visibility check), as a batch of one;
    colours and shapes are drawn from ``palette`` (:func:`choose_palette`; default all)."""
    colour_ids, shape_ids = (np.asarray(p) for p in palette)
    shared, unique = shape_ids[rng.choice(len(shape_ids), size=2, replace=False)]
    others = np.array([shared, shared, unique])
    rng.shuffle(others)
    target = 1 + int(np.flatnonzero(others == unique)[0])
    pos = np.zeros((4, 2))
    for _ in range(1000):
        xy = np.stack([rng.uniform(-2.6, 2.6, 3), rng.uniform(0.6, 3.2, 3)], 1)
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(3) * 99
        if gaps.min() >= 2.6 * SIZE:
            break
    pos[1:] = xy
    pos[0] = (rng.uniform(-1.6, 1.6), rng.uniform(-2.4, -1.2))
    yaw = rng.uniform(0, math.pi / 2, 4)
    dx, dy = pos[target] - pos[0]
    yaw[0] = math.atan2(dy, dx)
    eye, look = sample_camera(rng)
    return Layout(np.r_[ARROW, others][None],
                  colour_ids[rng.integers(0, len(colour_ids), 4)][None],
                  np.array([rng.integers(0, 2)]), pos[None], yaw[None], np.array([target]),
                  eye[None], look[None])


def stack_layouts(layouts: list[Layout]) -> Layout:
    """One :class:`Layout` of a batch from batches (concatenated along the first axis)."""
    return Layout(*(np.concatenate([getattr(x, f) for x in layouts])
                    for f in Layout.__dataclass_fields__))
