"""Scene-structure judges by dataset name: which datasets have an S-Acc judge, and the judge.

A judge is ``judge(images, dataset, progress=False) -> dict`` with at least ``sacc`` (share of
images judged to follow the dataset's rule), ``ci95`` (its Wilson 95% interval), ``n``,
``sacc_strict``, ``reasons`` (verdict -> count) and ``judge_version``; ``images`` are uint8
``[N, H, W, C]`` or floats ``[N, C, H, W]`` in [0, 1] (see :func:`gnm.eval.judge.judge_images`).
A judge with its own weights also registers how to load them (``weights(path) -> kwargs`` for
the judge; :func:`judge_weights`), so ``gnm judge --weights FILE`` works for any dataset.
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
_WEIGHTS: dict[str, Callable[[str | None], dict[str, Any]]] = {}


def register_judge(dataset: str, judge: Callable[..., dict[str, Any]],
                   weights: Callable[[str | None], dict[str, Any]] | None = None) -> None:
    """Make ``judge`` the S-Acc judge of ``dataset``; ``weights(path)`` (optional) loads the
    judge's weights from ``path`` (None: its shipped ones) as keyword arguments for ``judge``."""
    _JUDGES[dataset] = judge
    if weights is not None:
        _WEIGHTS[dataset] = weights
    else:
        _WEIGHTS.pop(dataset, None)  # a replaced judge does not keep its predecessor's loader


def judge_weights(dataset: str, path: str | None) -> dict[str, Any]:
    """Keyword arguments that make the judge of ``dataset`` use the weights in ``path`` (None:
    its shipped ones; ``{}`` for a judge without weights). A path given to a judge that has no
    weights raises GNMError."""
    require_judge(dataset, "judge weights")
    if dataset not in _WEIGHTS:
        if path is not None:
            raise GNMError(f"the {dataset} judge has no weights, so --weights {path} cannot be "
                           "used; leave --weights out.")
        return {}
    return _WEIGHTS[dataset](path)


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
