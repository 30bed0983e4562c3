"""Training: :func:`train` (the loop), checkpoints, export and loading, DDP support.

Names are imported lazily so that ``gnm.config`` can import :mod:`gnm.train.config` without
pulling in the trainer.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "train": "gnm.train.trainer",
    "export_weights": "gnm.train.checkpoint",
    "load_model": "gnm.train.checkpoint",
    "load_config": "gnm.train.checkpoint",
    "load_checkpoint": "gnm.train.checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gnm.train' has no attribute {name!r}")
