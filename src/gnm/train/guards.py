"""The trainer's guards: settings checked before a run starts, and the stops on numbers that
became NaN or inf during it (each a :class:`~gnm.errors.GNMError` of one sentence)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from gnm.errors import GNMError
from gnm.train.config import TrainConfig

#: Largest accepted train.lr: the optimisers turn it into float32 step sizes (Adam's first one is
#: 10·lr), so far larger values overflow inside ``optimizer.step`` instead of diverging visibly.
MAX_LR = 1e30


def check_train_settings(tc: TrainConfig) -> None:
    """Refuse train settings that cannot run (naming the key, its value and what it takes)."""
    for name in ("steps", "log_every", "ckpt_every", "sample_every", "sample_n", "num_threads",
                 "judge_every", "judge_n"):
        value = getattr(tc, name)
        low = {"log_every": 1, "ckpt_every": 1, "sample_n": 1, "judge_n": 20}.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise GNMError(f"train.{name}={value!r} must be an integer >= {low}.")
    if not (isinstance(tc.lr, (int, float)) and not isinstance(tc.lr, bool) and tc.lr > 0
            and tc.lr <= MAX_LR):
        raise GNMError(f"train.lr={tc.lr!r} must be a positive number <= {MAX_LR:g}.")
    for end in ("start", "end"):  # lr_scale is linear between the two, so they bound it
        value = getattr(tc.lr_scale, end, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                or not tc.lr * value <= MAX_LR:
            raise GNMError(f"train.lr_scale.{end}={value!r} must be a number >= 0 with "
                           f"train.lr · train.lr_scale.{end} <= {MAX_LR:g}.")
    limit = tc.time_limit_s
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 0 \
            or math.isinf(limit):
        raise GNMError(f"train.time_limit_s={limit!r} must be a number of seconds >= 0 "
                       "(0: no limit).")


def stop_non_finite(step: int, what: str, newest: str | None, in_forward: bool = False) -> None:
    """Raise the trainer's non-finite stop: ``what`` became NaN/inf at ``step``.

    ``in_forward``: found in the loss or gradient of ``step``, which are a pure function of the
    weights after step ``step - 1`` and of ``(seed, step)``: when the newest checkpoint holds
    exactly those weights, resuming from it would stop here again, whatever train.lr.
    """
    if in_forward and newest is not None and Path(newest).name == f"step_{step - 1:08d}.pt":
        raise GNMError(f"training stopped at step {step}: {what} became non-finite (NaN or inf) "
                       f"one step after the newest checkpoint {newest}, so its weights diverge: "
                       "delete it, lower train.lr and resume with --resume (from the checkpoint "
                       "before it, or from step 0 if there is none).")
    raise GNMError(f"training stopped at step {step}: {what} became non-finite (NaN or inf); "
                   f"the newest checkpoint {newest or '(none yet)'} is intact, so lower "
                   "train.lr and resume with --resume.")


@torch.no_grad()
def finite_params(params: list[nn.Parameter]) -> bool:
    """Whether every parameter is finite (one host sync; done before each checkpoint)."""
    if not params:
        return True
    return bool(torch.stack([p.isfinite().all() for p in params]).all())
