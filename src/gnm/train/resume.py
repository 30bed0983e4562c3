"""What ``train(..., resume=True)`` needs besides the loop: which config a run directory holds,
whether a given config may continue it, restoring a checkpoint's state into a fresh model and
optimiser (with one-sentence errors when it does not fit), and removing the temporary files an
interrupted checkpoint write left behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gnm.config import Config, to_dict
from gnm.errors import GNMError
from gnm.io import remove_stale_temporaries
from gnm.train.checkpoint import (
    _fit_keys,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
)

#: Config keys that may change when a run is resumed (everything else must match).
RESUME_MAY_CHANGE = ("data.data_dir", "data.num_workers")
#: Of the train section only these must match on resume (the rest, e.g. steps, may change).
#: The optimiser's saved state only fits the optimiser that wrote it.
RESUME_TRAIN_FIXED = ("train.seed", "train.batch_size", "train.optimizer")
CONFIG_JSON = "config.json"


def first_few(names: list[str], limit: int = 3) -> str:
    """``'a', 'b', 'c' (+2 more)``: the first ``limit`` names, quoted, and how many are left."""
    shown = ", ".join(repr(k) for k in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resumable(saved: Config, given: Config, ckpt: Path) -> None:
    """The given config may differ from the saved one only where resuming stays meaningful."""
    old, new = _flat(to_dict(saved)), _flat(to_dict(given))
    differ = [k for k in sorted(set(old) | set(new))
              if old.get(k) != new.get(k) and k not in RESUME_MAY_CHANGE
              and (not k.startswith("train.") or k in RESUME_TRAIN_FIXED)]
    if differ:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in differ[:4])
        raise GNMError(f"cannot resume from {ckpt}: the config differs in {shown}; resume with "
                       "the run's own settings (they are in its config.json) or start a new run.")


def saved_config_json(run_dir: str | Path) -> Config | None:
    """The config in ``RUN_DIR/config.json`` (written when a run starts), or None without one."""
    path = Path(run_dir) / CONFIG_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise GNMError(f"{path} cannot be read as a config ({exc}); delete it and pass "
                       "--preset NAME to start the run afresh.") from exc
    return Config.from_dict(data)


def run_config(run_dir: str | Path) -> Config | None:
    """The config a run directory continues with: its newest checkpoint's, else its
    config.json's (a run stopped before its first checkpoint), else None."""
    latest = latest_checkpoint(run_dir)
    if latest is not None:
        return Config.from_dict(load_checkpoint(latest)["config"])
    return saved_config_json(run_dir)


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            path: Path) -> tuple[int, float]:
    """Load checkpoint ``state`` (read from ``path``) into ``model``, ``optimizer`` and the
    global generators; returns ``(step, elapsed seconds)``. Raises :class:`GNMError` when the
    state does not fit the model the config builds, or a part of it is missing or damaged."""
    weights = state.get("model")
    if not isinstance(weights, dict):
        _damaged(path, "model state", TypeError("not a state dict"))
    missing, unexpected = _fit_keys(model, weights)
    if missing or unexpected:
        parts = [f"{len(names)} {kind} key(s) ({first_few(names)})"
                 for kind, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise GNMError(f"cannot resume from {path}: its model state has {' and '.join(parts)} "
                       "for the model the config builds; it was written by another model "
                       "version, so resume it with the gnm version that wrote it or start a "
                       "new run in another --out.")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # same keys, other shapes
        first = str(exc).strip().splitlines()[-1].strip().rstrip(".")
        raise GNMError(f"cannot resume from {path}: its model state does not fit the model the "
                       f"config builds ({first}); resume it with the gnm version that wrote it "
                       "or start a new run in another --out.") from exc
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        _damaged(path, "optimiser state", exc)
    try:
        restore_rng_state(state["rng"])
        return int(state["step"]), float(state.get("elapsed", 0.0))
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        _damaged(path, "generator state or step", exc)
    raise AssertionError("unreachable")


def _damaged(path: Path, what: str, exc: BaseException) -> None:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    raise GNMError(f"cannot resume from {path}: its {what} is missing or damaged "
                   f"({type(exc).__name__}{': ' + detail if detail else ''}); delete that "
                   "checkpoint to resume from the one before, or start a new run.") from exc


def remove_checkpoint_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files a write killed midway left in the run directory and its
    checkpoints folder (see :func:`gnm.io.remove_stale_temporaries`); return them."""
    return remove_stale_temporaries(run_dir, checkpoint_dir(run_dir))
