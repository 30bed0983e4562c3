"""The training loop: one function, :func:`train`, for notebooks, the CLI and ``torchrun``.

    from gnm.config import Config
    from gnm.train.trainer import train
    result = train(Config(), "runs/demo")          # result["model"] is the trained model

A step ``t`` (0-based; ``t`` optimiser steps are done before it) does: seed every generator from
``(seed, rank, t)``; take the batch that :class:`~gnm.train.sampler.StepBatchSampler` assigns
to ``t``; ``out = model(x, t)`` (optionally under bf16 autocast); back-propagate ``out["loss"]``;
clip the global gradient norm; check every scalar of ``out`` and the gradient norm for
NaN/inf; then take the optimiser step. Because noise and data are pure functions of
``(seed, step)`` and checkpoints restore weights and optimiser state exactly, a run resumed from
step ``k`` ends bit-identical (on CPU) to one that never stopped.

Records: ``RUN_DIR/config.json``, ``metrics.jsonl`` (one line per ``log_every`` steps with the
window means of every scalar the model returns, ``lr``, ``grad_norm``, ``steps_per_s``, wall
time), ``checkpoints/``, ``samples/`` (PNG grids) and ``tb/`` when TensorBoard is installed.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gnm.config import Config, check_config, to_dict
from gnm.data.registry import build_dataset
from gnm.errors import GNMError
from gnm.io import atomic_write_json, check_writable
from gnm.train import distributed
from gnm.train.callbacks import Callback, default_callbacks
from gnm.train.checkpoint import (
    build_from_registry,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from gnm.train.config import TrainConfig
from gnm.train.guards import check_train_settings, finite_params, stop_non_finite
from gnm.train.logger import RunLogger, truncate_metrics
from gnm.train.resume import (
    CONFIG_JSON,
    check_resumable,
    first_few,
    remove_checkpoint_temporaries,
    restore,
    saved_config_json,
)
from gnm.train.sampler import StepBatchSampler

_STEP_SALT = 0x676E6D  # separates per-step noise seeds from other uses of the seed


def make_optimizer(params: Iterable[nn.Parameter], tc: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``tc`` names (``rmsprop`` as in the reference, or ``adam``)."""
    if tc.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=tc.lr)
    if tc.optimizer == "adam":
        return torch.optim.Adam(params, lr=tc.lr)
    raise GNMError(f"train.optimizer={tc.optimizer!r} is not known; use rmsprop or adam.")


def seed_all(seed: int) -> None:
    """Seed python's, numpy's and torch's (all devices) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the noise drawn at ``step`` on ``rank``: a well-mixed 63-bit function."""
    words = np.random.SeedSequence([_STEP_SALT, seed, rank, step]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _images(batch: Any) -> torch.Tensor:
    """The image tensor of a collated batch (a dict with ``image``, a tuple, or a tensor)."""
    if isinstance(batch, dict):
        return batch["image"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def _scalars(out: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """The one-number entries of a model's output dict, as detached float tensors."""
    found = {}
    for key, value in out.items():
        if isinstance(value, torch.Tensor) and value.dim() == 0:
            found[key] = value.detach().float()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[key] = torch.tensor(float(value), device=device)
    if "loss" not in found:
        raise GNMError("the model's output has no scalar 'loss' entry; a model's forward(x, step) "
                       "must return a dict with the scalar loss to minimise under 'loss'.")
    return found


def _reduce(out: dict[str, Any], grad_norm: torch.Tensor, over_time: bool | None, ctx: Any,
            device: torch.device) -> tuple[dict[str, float], bool]:
    """One host sync per step: every scalar of the model's output and the gradient norm,
    averaged over the ranks, and whether any rank is over the time limit (``over_time`` None:
    no limit), reduced with the rest so that every rank stops at the same step."""
    scalars = _scalars(out, device)
    names = [*scalars, "grad_norm"]
    vec = [*scalars.values(), grad_norm.detach().float().reshape(())]
    if over_time is not None:
        names.append("_over_time")
        vec.append(torch.tensor(float(over_time), device=device))
    values = dict(zip(names, distributed.all_reduce_mean_(torch.stack(vec), ctx).tolist(),
                      strict=True))
    return values, values.pop("_over_time", 0.0) > 0


class _Window:
    """Sums of every logged value over the steps since the last metrics record."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n, self.t0 = 0, time.perf_counter()

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def record(self, step: int, elapsed: float, lr: float) -> dict[str, Any]:
        """The metrics.jsonl record of the window ending at ``step`` (means), then reset."""
        now = time.perf_counter()
        record = {"step": step, "time": time.time(), "elapsed": elapsed,
                  **{k: v / self.n for k, v in self.sums.items()}, "lr": lr,
                  "steps_per_s": self.n / max(now - self.t0, 1e-9)}
        self.sums, self.n, self.t0 = {}, 0, now
        return record


def _run_config(cfg: Config | None, run_dir: Path, resume: bool
                ) -> tuple[Config, dict[str, Any] | None, Path | None, list[str]]:
    """The run's config (given, or the saved one), the checkpoint state to resume from (or
    None) and its path, and the notes to print; every setting checked."""
    latest = latest_checkpoint(run_dir)
    if latest is not None and not resume:
        raise GNMError(f"{run_dir} already holds checkpoints (newest {latest.name}); pass "
                       "--resume to continue that run or choose another --out directory.")
    state = load_checkpoint(latest) if (resume and latest is not None) else None
    notes = []
    if state is not None:
        if not isinstance(state.get("config"), dict):
            raise GNMError(f"checkpoint {latest} holds no config; delete it to resume from the "
                           "one before, or start a new run.")
        saved = Config.from_dict(state["config"])
        if cfg is None:
            cfg = saved
        else:
            check_resumable(saved, cfg, latest)
    elif resume and (run_dir / CONFIG_JSON).is_file():  # stopped before its first checkpoint
        which = "the given config"
        if cfg is None:
            cfg, which = saved_config_json(run_dir), "that config"
        notes.append(f"note: {run_dir} has {CONFIG_JSON} but no checkpoint yet, so training "
                     f"starts from step 0 with {which}.")
    if cfg is None:
        raise GNMError(f"no config given and {run_dir} holds no checkpoint to resume; "
                       "pass a config (e.g. --preset NAME).")
    check_config(cfg)  # every key's type and range (train.LIMITS, model.LIMITS, ...)
    check_train_settings(cfg.train)  # lr bounds and time limit, beyond the LIMITS table
    return cfg, state, latest, notes


def _loader(cfg: Config, dataset: torch.utils.data.Dataset | None, start: int,
            state: dict[str, Any] | None, ctx: Any, device: torch.device
            ) -> tuple[torch.utils.data.DataLoader, dict[str, Any]]:
    """The step-indexed loader (batch of step t is a pure function of seed and t) over
    ``dataset`` (default: the data section's train split) and the data order to checkpoint."""
    tc = cfg.train
    if dataset is None:
        dataset = build_dataset(cfg.data, "train")
    sampler = StepBatchSampler(len(dataset), tc.batch_size, tc.seed, start, tc.steps,
                               ctx.rank, ctx.world_size)
    data_order = {"seed": tc.seed, "batch_size": tc.batch_size, "dataset_len": len(dataset)}
    saved_len = (state or {}).get("data_order", {}).get("dataset_len", len(dataset))
    if ctx.is_main and saved_len != len(dataset):
        print(f"note: the training set has {len(dataset)} items but had {saved_len} when "
              "the checkpoint was saved, so the resumed data order differs.", file=sys.stderr)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler,
                                         num_workers=cfg.data.num_workers,
                                         pin_memory=device.type == "cuda")
    return loader, data_order


@torch.no_grad()
def _run_callbacks(callbacks: list[Callback], model: nn.Module, x: torch.Tensor, t: int,
                   step: int, final: bool) -> None:
    """Each callback due at ``step`` (every ``every`` steps, and at the last step), in eval
    mode; the model goes back to training mode afterwards."""
    due = [c for c in callbacks if c.every > 0 and (step % c.every == 0 or final)]
    if not due:
        return
    model.eval()
    try:
        for callback in due:
            callback(model, x, t, step)
    finally:
        model.train()


def train(cfg: Config | None, out_dir: str | Path, resume: bool = False,
          model: nn.Module | None = None,
          dataset: torch.utils.data.Dataset | None = None,
          callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train a model and keep everything in ``out_dir``; returns a summary dict.

    Args:
        cfg: the run's config. With ``resume`` it may be None (the saved one is used); otherwise
            it must match the saved config except in ``train.*`` keys other than seed and
            batch size (e.g. ``train.steps`` may grow) and ``data.data_dir/num_workers``.
        out_dir: the run directory (created if missing).
        resume: continue from the newest checkpoint in ``out_dir``; without one start afresh
            (with ``cfg`` None: from step 0 with ``out_dir/config.json``, saying so).
            Without it, a run directory that already holds checkpoints is an error.
        model: a model obeying the contract ``model(x, step) -> dict`` with a scalar ``loss``
            (mean over the batch); built from ``cfg`` by the model registry when omitted.
        dataset: items are dicts with ``image`` ``[C, S, S]`` in [0, 1] (or tensors/tuples);
            default: ``gnm.data.registry.build_dataset(cfg.data, "train")``.
        callbacks: more :class:`~gnm.train.callbacks.Callback` objects, run on rank 0 after
            the defaults (sample grids, S-Acc checks; see ``default_callbacks``).

    With ``train.time_limit_s > 0`` the run also ends after the step at which this call has run
    that many wall-clock seconds; that step is treated as the last one (metrics record, samples,
    S-Acc check and checkpoint), so ``--resume`` continues from it.

    Returns:
        ``{"run_dir", "step", "checkpoint", "metrics", "model"}``: the steps done, the newest
        checkpoint's path, the last metrics record and the trained (unwrapped) model.

    Raises:
        GNMError: on a non-finite loss term or gradient (naming the step and the term; the
            newest checkpoint is left as it was), and on unusable settings.
    """
    t_call = time.time()  # train.time_limit_s counts from here
    run_dir = Path(out_dir)
    cfg, state, latest, notes = _run_config(cfg, run_dir, resume)
    tc = cfg.train

    ctx = distributed.setup(tc.device)
    logger = None
    try:
        device = distributed.resolve_device(tc.device, ctx)
        if ctx.is_main:
            stale = remove_checkpoint_temporaries(run_dir)
            if stale:
                notes.append(f"note: removed {len(stale)} temporary file(s) left by a write "
                             f"killed midway ({first_few([p.name for p in stale], 2)}).")
            for note in notes:
                print(note, file=sys.stderr)
        distributed.per_rank_batch(tc.batch_size, ctx)
        if ctx.is_main:
            check_writable(run_dir)  # fail now, not after building the model and data
        if tc.num_threads > 0:
            torch.set_num_threads(tc.num_threads)

        # ---- model and optimiser (initialisation is a function of the seed alone)
        seed_all(tc.seed)
        if model is None:
            model = build_from_registry(cfg)
        model.to(device)
        optimizer = make_optimizer(model.parameters(), tc)
        start = 0
        elapsed0 = 0.0
        if state is not None:
            start, elapsed0 = restore(state, model, optimizer, latest)
        newest = str(latest) if state is not None else None
        wrapped = distributed.wrap_model(model, ctx, device, tc.find_unused_parameters)
        model.train()

        # ---- data: batch of step t is a pure function of (seed, t)
        loader, data_order = _loader(cfg, dataset, start, state, ctx, device)

        # ---- records (rank 0 only)
        if ctx.is_main:
            atomic_write_json(run_dir / "config.json", to_dict(cfg))
            truncate_metrics(run_dir, start)
        # A time-limited run usually stops long before tc.steps: show no misleading ETA.
        logger = RunLogger(run_dir, ctx.is_main, tc.tensorboard, tc.progress,
                           None if tc.time_limit_s > 0 else tc.steps, start)

        params = [p for p in model.parameters() if p.requires_grad]
        max_norm = tc.grad_clip if tc.grad_clip and tc.grad_clip > 0 else math.inf
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16)
        t_start = time.time()
        window = _Window()
        last: dict[str, Any] = {}
        done = start

        todo: list[Callback] = []
        if ctx.is_main:
            todo = default_callbacks(cfg, model, logger, device,
                                     lambda: elapsed0 + time.time() - t_start)
            todo += list(callbacks or [])
        for t, batch in zip(range(start, tc.steps), loader, strict=False):
            step = t + 1  # optimiser steps done after this one
            seed_all(step_seed(tc.seed, ctx.rank, t))
            x = _images(batch).to(device, non_blocking=True)
            with autocast:
                out = wrapped(x, t)
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["lr"] = tc.lr_at(t)
            out["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)

            over = (time.time() - t_call > tc.time_limit_s) if tc.time_limit_s > 0 else None
            values, over = _reduce(out, grad_norm, over, ctx, device)
            final = step == tc.steps or over
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                terms = [k for k in bad if k != "grad_norm"]
                what = f"loss term(s) {first_few(terms)}" if terms else "the gradient"
                stop_non_finite(step, what, newest, in_forward=True)
            try:
                optimizer.step()
            except RuntimeError as exc:  # a step size beyond float32 (lr · lr_scale too large)
                if "overflow" not in str(exc):
                    raise
                stop_non_finite(step, f"the optimiser's step size (lr {group['lr']:g})",
                                 newest)

            window.add(values)
            logger.advance({k: values[k] for k in ("loss", "elbo") if k in values})
            done = step
            if step % tc.log_every == 0 or final:
                last = window.record(step, elapsed0 + time.time() - t_start,
                                     optimizer.param_groups[0]["lr"])
                logger.log(last)

            _run_callbacks(todo, model, x, t, step, final)

            if step % tc.ckpt_every == 0 or final:
                if not finite_params(params):  # never save diverged weights as a checkpoint
                    stop_non_finite(step, "the weights", newest)
                if ctx.is_main:
                    newest = str(save_checkpoint(
                        run_dir, step, model, optimizer, cfg, {**data_order, "step": step},
                        elapsed0 + time.time() - t_start, tc.keep_last))
                else:
                    newest = str(run_dir / "checkpoints" / f"step_{step:08d}.pt")
            if final:
                break
        return {"run_dir": str(run_dir), "step": done, "checkpoint": newest,
                "metrics": last, "model": model}
    finally:
        if logger is not None:
            logger.close()
        distributed.teardown(ctx)
