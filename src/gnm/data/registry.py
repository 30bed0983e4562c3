"""Datasets by name: :func:`build_dataset` turns a run's data section into a ``Dataset``.

Every dataset's item is a dict of one fixed layout:

``image``      float32 ``[C, S, S]`` in [0, 1] (``C`` = ``data.channels``, ``S`` = ``data.size``)
``boxes``      float32 ``[M, 4]`` ground-truth boxes in pixels (x0, y0, x1, y1), zero padded
``classes``    int64 ``[M]`` object labels, -1 padded (a dataset without labels: all -1)
``n_objects``  int64 ``[]`` the number of real objects (the first ``n_objects`` rows)

``M`` is the dataset's most objects per scene. A dataset registers itself with
:func:`register_dataset`; the built-in ones are found by name through :data:`BUILTIN` (name ->
the module that registers it, imported on first use). With ``data.path`` set, the run trains
on scenes stored by ``gnm data make`` in that folder (:class:`gnm.data.store.SceneShards`)
instead of generating them on the fly; the folder's manifest must match the data section.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gnm.errors import GNMError

#: built-in dataset name -> module that registers it
BUILTIN = {"mnist4": "gnm.data.scenes", "mnist10": "gnm.data.scenes",
           "mnist4_10": "gnm.data.scenes", "arrow": "gnm.data.arrow_room"}


@dataclass(frozen=True)
class DatasetSpec:
    """How to build one named dataset: ``build(data_cfg, split, seed, mnist)``, its image
    channels (``data.channels`` must equal them), which of the data section's
    dataset-specific fields (:data:`OPTIONS`) it reads, and the version of the scenes it makes
    (bumped whenever the same seed, split and index give another scene; exports record it)."""

    build: Callable[..., torch.utils.data.Dataset]
    channels: int = 1
    options: tuple[str, ...] = ()
    version: int = 1


#: fields of the data section that only some datasets read (each says so in its registration);
#: any other dataset refuses them at anything but their defaults
OPTIONS = ("colours", "shapes")


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, build: Callable[..., torch.utils.data.Dataset],
                     channels: int = 1, options: tuple[str, ...] = (), version: int = 1) -> None:
    """Make ``build_dataset`` build ``build(data_cfg, split, seed, mnist)`` for
    ``data.dataset == name``; ``options`` names the fields of :data:`OPTIONS` it reads,
    ``version`` the version of its scenes (:class:`DatasetSpec`)."""
    _DATASETS[name] = DatasetSpec(build, channels, tuple(options), int(version))


def dataset_spec(name: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` of ``name`` (imports a built-in's module)."""
    if name not in _DATASETS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _DATASETS:
        raise GNMError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}.")
    return _DATASETS[name]


def check_options(name: str, values: dict[str, Any]) -> None:
    """Raise a GNMError if dataset ``name`` does not read a field of :data:`OPTIONS` that
    ``values`` (field -> value) sets to anything but empty."""
    spec = dataset_spec(name)
    for key, value in values.items():
        if value and key not in spec.options:
            readers = [n for n in dataset_names() if key in dataset_spec(n).options]
            raise GNMError(f"data.{key} applies only to dataset {', '.join(readers) or 'none'}"
                           f", not to {name}; leave it out.")


def dataset_names() -> list[str]:
    """Every dataset name known now (built-in and registered)."""
    return sorted(set(BUILTIN) | set(_DATASETS))


def build_dataset(data: Any, split: str = "train", seed: int | None = None,
                  mnist: Any = None) -> torch.utils.data.Dataset:
    """The ``split`` scenes of data section ``data`` (a :class:`gnm.config.DataConfig`), items
    as in the module docstring. ``seed`` defaults to ``data.seed``; ``mnist`` (digits already
    loaded) saves reading them again. ``data.path`` (stored scenes) is used for the train split
    only; evaluation always uses the generated test split."""
    spec = dataset_spec(data.dataset)
    if data.channels != spec.channels:
        raise GNMError(f"dataset {data.dataset} has {spec.channels}-channel images, but "
                       f"data.channels={data.channels}; set data.channels={spec.channels}.")
    check_options(data.dataset, {key: getattr(data, key, ()) for key in OPTIONS})
    if getattr(data, "path", None) and split == "train":
        return _stored(data)
    return spec.build(data, split, data.seed if seed is None else seed, mnist)


def stack_images(dataset: Any, indices: Any) -> torch.Tensor:
    """The ``image`` of each item ``indices`` of ``dataset``, stacked: ``[len, C, S, S]``."""
    return torch.stack([dataset[i]["image"] for i in indices])


def _stored(data: Any) -> torch.utils.data.Dataset:
    from gnm.data.store import SceneShards

    shards = SceneShards(data.path)
    found = shards.manifest
    wants = [("dataset", data.dataset), ("size", data.size), ("split", "train")]
    wants += [(key, list(getattr(data, key, ()))) for key in OPTIONS]
    for key, want in wants:
        have = found.get(key, [] if key in OPTIONS else None)
        if have != want:
            raise GNMError(f"the scenes in data.path={data.path} have {key} "
                           f"{have!r}, but the run needs {want!r}; export matching "
                           "scenes with `gnm data make` or change the data section.")
    return shards
