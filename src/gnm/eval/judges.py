"""Scene-structure judges by dataset name: which datasets have an S-Acc judge, and the judge.

A judge is ``judge(images, dataset, progress=False) -> dict`` with at least ``sacc`` (share of
images judged to follow the dataset's rule), ``ci95`` (its Wilson 95% interval), ``n``,
``sacc_strict``, ``reasons`` (verdict -> count) and ``judge_version``; ``images`` are uint8
``[N, H, W, C]`` or floats ``[N, C, H, W]`` in [0, 1] (see :func:`gnm.eval.judge.judge_images`).
A dataset registers its judge with :func:`register_judge`; the built-in judges (the MNIST
digit judge of :mod:`gnm.eval.judge`, the Arrow Room's of
:mod:`gnm.eval.arrow_judge`) are found by name through :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gnm.errors import GNMError

#: dataset name -> module that registers its judge (imported on first use)
BUILTIN = {"mnist4": "gnm.eval.judge", "mnist10": "gnm.eval.judge",
           "mnist4_10": "gnm.eval.judge", "arrow": "gnm.eval.arrow_judge"}
_JUDGES: dict[str, Callable[..., dict[str, Any]]] = {}


def register_judge(dataset: str, judge: Callable[..., dict[str, Any]]) -> None:
    """Make ``judge`` the S-Acc judge of ``dataset``."""
    _JUDGES[dataset] = judge


def judge_for(dataset: str) -> Callable[..., dict[str, Any]] | None:
    """The judge of ``dataset``, or None if it has none."""
    if dataset not in _JUDGES and dataset in BUILTIN:
        importlib.import_module(BUILTIN[dataset])
    return _JUDGES.get(dataset)


def has_judge(dataset: str) -> bool:
    """Whether ``dataset`` has an S-Acc judge."""
    return judge_for(dataset) is not None


def judged_datasets() -> list[str]:
    """Every dataset with a judge (built-in and registered)."""
    return sorted(d for d in set(BUILTIN) | set(_JUDGES) if has_judge(d))


def require_judge(dataset: str, what: str) -> Callable[..., dict[str, Any]]:
    """The judge of ``dataset``; a GNMError naming ``what`` needed it if there is none."""
    judge = judge_for(dataset)
    if judge is None:
        raise GNMError(f"{what} needs a dataset with an S-Acc judge ({', '.join(judged_datasets())}"
                       f"), not {dataset!r}.")
    return judge
