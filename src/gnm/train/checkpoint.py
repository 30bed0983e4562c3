"""Checkpoints, exported weights and loading a trained model back.

A run directory holds ``checkpoints/step_00001000.pt``. Each checkpoint is a plain dict saved
with ``torch.save`` and read with ``torch.load(weights_only=True)`` (so loading never runs code):

``format``, ``version``, ``step`` (optimiser steps done), ``model`` and ``optimizer`` state
dicts, ``rng`` (python / numpy / torch / CUDA generator states as tensors and plain types),
``data_order`` (seed, step, batch size and dataset length: with them the next batch is
determined), ``elapsed`` (training seconds so far) and ``config`` (the run's :class:`Config` as a
dict). Files are written to a temporary name and renamed, so a crash never leaves a partial
checkpoint under a real name; only the newest ``keep_last`` are kept.

:func:`export_weights` writes the model weights as safetensors, with the config in the file's
metadata and beside it as JSON. :func:`load_model` accepts a run directory, a checkpoint or a
safetensors file and rebuilds the model from its stored config through the model registry.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnm.config import Config, to_dict
from gnm.errors import GNMError
from gnm.io import atomic_write, atomic_write_bytes, atomic_write_json, check_writable

FORMAT = "gnm-checkpoint"
VERSION = 1
CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.pt$")

ModelBuilder = Callable[[Config], nn.Module]


# ---------------------------------------------------------------------------- RNG states
def capture_rng_state() -> dict[str, Any]:
    """The python, numpy, torch and CUDA generator states, as tensors and plain types."""
    version, py_state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


# ---------------------------------------------------------------------------- files
def checkpoint_dir(run_dir: str | Path) -> Path:
    """``RUN_DIR/checkpoints``."""
    return Path(run_dir) / CKPT_DIR


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in ``run_dir``."""
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first (temporary files of unfinished writes are ignored)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of the run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (``keep_last <= 0``: keep all)."""
    if keep_last <= 0:
        return []
    old = list_checkpoints(run_dir)[:-keep_last]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def save_checkpoint(run_dir: str | Path, step: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None, cfg: Config,
                    data_order: dict[str, Any] | None = None, elapsed: float = 0.0,
                    keep_last: int = 0) -> Path:
    """Write the checkpoint of ``step`` atomically, prune to ``keep_last``; return its path."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": capture_rng_state(),
        "data_order": dict(data_order or {}),
        "elapsed": float(elapsed),
        "config": to_dict(cfg),
        "torch_version": str(torch.__version__),
    }
    path = checkpoint_path(run_dir, step)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    prune_checkpoints(run_dir, keep_last)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file: ``path`` itself, or the newest checkpoint of run directory ``path``."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise GNMError(f"{path} holds no checkpoints (expected {path / CKPT_DIR}/step_*.pt); "
                           "train first or pass a checkpoint or .safetensors file.")
        return latest
    if not path.is_file():
        raise GNMError(f"{path} does not exist; pass a run directory, a checkpoint (.pt) or "
                       "a .safetensors file.")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (a file, or a run directory's newest) without executing any code."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, disallowed global, ...
        raise GNMError(f"checkpoint {path} cannot be read ({type(exc).__name__}); it is "
                       "damaged or not a gnm checkpoint: delete it to resume from the one "
                       "before.") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GNMError(f"{path} is not a gnm checkpoint (no format={FORMAT!r} marker).")
    if state.get("version", 0) > VERSION:
        raise GNMError(f"checkpoint {path} has format version {state['version']}, newer than "
                       f"this gnm reads ({VERSION}); upgrade gnm.")
    return state


# ---------------------------------------------------------------------------- export / load
def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors"


def _safetensors_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise GNMError(f"{path} cannot be read as safetensors ({type(exc).__name__}); the file "
                       "is damaged: export it again.") from exc


def load_config(path: str | Path) -> Config:
    """The :class:`Config` stored with a run directory, checkpoint or safetensors file."""
    path = Path(path)
    if _is_safetensors(path):
        if not path.is_file():
            raise GNMError(f"{path} does not exist; pass a run directory, a checkpoint (.pt) "
                           "or a .safetensors file.")
        meta = _safetensors_meta(path)
        if "gnm_config" in meta:
            return Config.from_dict(json.loads(meta["gnm_config"]))
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            return Config.from_dict(json.loads(sidecar.read_text())["config"])
        raise GNMError(f"{path} carries no gnm config (metadata key 'gnm_config') and "
                       f"{sidecar.name} is missing; export it with gnm's export_weights.")
    return Config.from_dict(load_checkpoint(path)["config"])


def export_weights(run_dir_or_ckpt: str | Path, out_path: str | Path, fp16: bool = False) -> Path:
    """Write the model weights of a run (newest checkpoint) or checkpoint as safetensors.

    With ``fp16`` floating-point tensors are stored in half precision (half the file size;
    :func:`load_model` casts them back to the model's float32 parameters).

    The config, the step and the training wall-clock seconds go into the safetensors metadata
    (keys ``gnm_config``, ``gnm_step``, ``gnm_elapsed``) and into ``out_path`` with suffix
    ``.json`` (keys ``config``, ``step``, ``elapsed``). Returns the path written.
    """
    out_path = Path(out_path)
    if not _is_safetensors(out_path):
        raise GNMError(f"export target {out_path} must end in .safetensors.")
    from safetensors.torch import save

    check_writable(out_path.parent)
    state = load_checkpoint(run_dir_or_ckpt)
    # Clone: safetensors refuses tensors that share memory (e.g. tied weights).
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state["model"].items()}
    if fp16:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    config_json = json.dumps(state["config"])
    elapsed = float(state.get("elapsed", 0.0))  # training wall-clock seconds
    meta = {"format": "gnm-weights", "gnm_config": config_json, "gnm_step": str(state["step"]),
            "gnm_elapsed": repr(elapsed)}
    atomic_write_bytes(out_path, save(tensors, metadata=meta))
    atomic_write_json(out_path.with_suffix(".json"),
                      {"format": "gnm-weights", "step": state["step"], "elapsed": elapsed,
                       "config": state["config"]})
    return out_path


def build_from_registry(cfg: Config) -> nn.Module:
    """The model that ``cfg`` names, built by :func:`gnm.models.registry.build_model`."""
    from gnm.models.registry import build_model

    return build_model(cfg)


def load_model(path: str | Path, device: str | torch.device = "cpu",
               build: ModelBuilder | None = None) -> nn.Module:
    """A trained model in eval mode from a run directory, checkpoint (.pt) or .safetensors file.

    The model is rebuilt from the stored config by ``build`` (default: the model registry) and
    its weights loaded; nothing in the files is executed.
    """
    return load_model_and_config(path, device, build)[0]


def load_model_and_config(path: str | Path, device: str | torch.device = "cpu",
                          build: ModelBuilder | None = None) -> tuple[nn.Module, Config]:
    """:func:`load_model` and the stored :class:`Config`, reading the file once."""
    from gnm.devices import check_device

    check_device(device, "device")  # before the work: one sentence if it is not here
    path = Path(path)
    build = build or build_from_registry
    if _is_safetensors(path):
        from safetensors.torch import load_file

        cfg = load_config(path)
        weights = load_file(str(path))
        where = path
    else:
        state = load_checkpoint(path)
        cfg = Config.from_dict(state["config"])
        weights = state["model"]
        where = resolve_checkpoint(path)
    model = build(cfg)
    missing, unexpected = _fit_keys(model, weights)
    if missing or unexpected:
        raise GNMError(f"weights in {where} do not fit the {_model_name(cfg)} model their "
                       f"config builds ({len(missing)} missing, {len(unexpected)} unexpected "
                       f"keys, e.g. {(missing + unexpected)[0]!r}); they come from another model "
                       "or another version of it: check model.name in the config stored with "
                       "them.")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).strip().splitlines()[-1].strip()
        raise GNMError(f"weights in {where} do not fit the {_model_name(cfg)} model their "
                       f"config builds ({first}); they come from another model version.") from exc
    _check_finite(weights, where)
    return model.to(device).eval(), cfg


def _model_name(cfg: Any) -> str:
    return repr(getattr(getattr(cfg, "model", None), "name", "?"))


def _check_finite(weights: dict[str, torch.Tensor], where: Path) -> None:
    """One sentence if any floating-point tensor holds NaN or inf (a diverged run's weights
    would otherwise give NaN images, which PNG and uint8 writes turn silently into black)."""
    bad = sorted(k for k, v in weights.items()
                 if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise GNMError(f"weights in {where} hold NaN or inf values ({len(bad)} of "
                       f"{len(weights)} tensors, e.g. {bad[0]!r}): the run diverged; use an "
                       "earlier checkpoint, or retrain with a lower train.lr.")


def _fit_keys(model: nn.Module, weights: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(weights)), sorted(set(weights) - expected)


def training_facts(path: str | Path) -> dict[str, Any]:
    """``{"steps", "seconds"}`` of training stored with a model file or run (None where
    unknown): the weights' JSON sidecar or metadata, or the checkpoint."""
    path = Path(path)
    if not _is_safetensors(path):
        state = load_checkpoint(path)
        return {"steps": int(state["step"]), "seconds": float(state.get("elapsed", 0.0))}
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
    else:
        raw = _safetensors_meta(path)
        meta = {"step": raw.get("gnm_step"), "elapsed": raw.get("gnm_elapsed")}
    return {"steps": int(meta["step"]) if meta.get("step") is not None else None,
            "seconds": float(meta["elapsed"]) if meta.get("elapsed") is not None else None}
