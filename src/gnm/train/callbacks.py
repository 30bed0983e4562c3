"""Work the trainer does every so many steps besides optimising: sample grids and S-Acc checks.

A callback has ``every`` (steps between calls; it is also called at the last step) and
``__call__(model, x, t, step)``: ``model`` the unwrapped model, ``x`` the step's batch, ``t``
the 0-based step just taken (``step = t + 1`` optimiser steps are done). It runs on rank 0
only, in eval mode under ``torch.no_grad``, and the trainer puts the model back in training
mode afterwards. :func:`default_callbacks` builds the ones a run's config asks for; pass more
to :func:`gnm.train.trainer.train` with ``callbacks=[...]``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from gnm.models.base import supports, why_not
from gnm.train.config import TrainConfig
from gnm.train.logger import RunLogger
from gnm.viz.grid import make_grid


class Callback(Protocol):
    """What the trainer calls every ``every`` steps (and at the last step)."""

    every: int

    def __call__(self, model: nn.Module, x: torch.Tensor, t: int, step: int) -> None: ...


class SampleGrids:
    """PNG grids of prior samples and of (input, reconstruction) pairs (``train.sample_every``,
    ``train.sample_n`` images; the prior grid only for a model that can sample)."""

    def __init__(self, tc: TrainConfig, logger: RunLogger, device: torch.device) -> None:
        self.every, self.tc, self.logger, self.device = tc.sample_every, tc, logger, device

    def __call__(self, model: nn.Module, x: torch.Tensor, t: int, step: int) -> None:
        tc = self.tc
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=tc.bf16)
        n = min(tc.sample_n, x.shape[0])
        with autocast:
            recon = model(x[:n], t).get("recon")
        if isinstance(recon, torch.Tensor):
            pairs = torch.stack([x[:n].float(), recon.float().clamp(0, 1)], 1).flatten(0, 1)
            self.logger.image("recon", step, make_grid(pairs, nrow=2 * math.ceil(math.sqrt(n))))
        if supports(model, "sample"):
            gen = torch.Generator(device=self.device).manual_seed(tc.seed)
            with autocast:
                samples = model.sample(tc.sample_n, generator=gen)
            self.logger.image("prior", step, make_grid(samples.float().clamp(0, 1)))


class JudgeSamples:
    """S-Acc of ``train.judge_n`` prior samples (generator seeded with ``train.seed``) by the
    dataset's judge, logged as ``{"step", "sacc", "sacc_lo", "sacc_hi", "judge_n", "judge_s",
    "elapsed"}``; ``elapsed()`` gives the run's training seconds so far."""

    def __init__(self, dataset: str, judge: Callable[..., dict[str, Any]], tc: TrainConfig,
                 logger: RunLogger, device: torch.device, elapsed: Callable[[], float]) -> None:
        self.every, self.dataset, self.judge, self.tc = tc.judge_every, dataset, judge, tc
        self.logger, self.device, self.elapsed = logger, device, elapsed

    def __call__(self, model: nn.Module, x: torch.Tensor, t: int, step: int) -> None:
        t0 = time.perf_counter()
        gen = torch.Generator(device=self.device).manual_seed(self.tc.seed)
        n = self.tc.judge_n
        images = torch.cat([model.sample(min(100, n - i), generator=gen).float().cpu()
                            for i in range(0, n, 100)])
        res = self.judge(images, self.dataset, progress=False)
        self.logger.log({"step": step, "sacc": res["sacc"], "sacc_lo": res["ci95"][0],
                         "sacc_hi": res["ci95"][1], "judge_n": res["n"],
                         "judge_s": time.perf_counter() - t0, "elapsed": self.elapsed()})


def default_callbacks(cfg: Any, model: nn.Module, logger: RunLogger, device: torch.device,
                      elapsed: Callable[[], float]) -> list[Callback]:
    """The callbacks ``cfg.train`` asks for (``sample_every``, ``judge_every``). S-Acc checks
    on a dataset without a judge are an error (set ``train.judge_every=0``); for a model that
    cannot sample they are left out with one ``note:`` line on stderr."""
    from gnm.eval.judges import require_judge

    tc = cfg.train
    out: list[Callback] = []
    if tc.sample_every > 0:
        out.append(SampleGrids(tc, logger, device))
    if tc.judge_every > 0:
        judge = require_judge(cfg.data.dataset, "train.judge_every (set it to 0)")
        if supports(model, "sample"):
            out.append(JudgeSamples(cfg.data.dataset, judge, tc, logger, device, elapsed))
        else:
            print(f"note: train.judge_every={tc.judge_every} is set, but "
                  f"{why_not(model, 'sample')}; S-Acc is not measured during training.",
                  file=sys.stderr, flush=True)
    return out
