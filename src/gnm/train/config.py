"""Trainer configuration (owned by the trainer). See gnm/config.py for how configs combine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gnm.schedule import Schedule


@dataclass
class TrainConfig:
    """Optimisation, logging and checkpointing of one run (SPEC §1: RMSprop 1e-4, clip 1, B 32)."""

    steps: int = 1000  # optimiser steps to run in total (a resumed run continues up to this)
    batch_size: int = 32  # global batch: split evenly over DDP ranks (must divide by world size)
    lr: float = 1e-4  # base learning rate (the curricula of the loss live in the model's schedules)
    lr_scale: Schedule = field(  # multiplier on lr at each step (default: constant 1); an
        default_factory=lambda: Schedule.constant(1.0))  # end_step of -1 means train.steps
    optimizer: str = "rmsprop"  # rmsprop | adam (torch defaults otherwise)
    grad_clip: float = 1.0  # max global L2 norm of the gradient; <= 0 disables clipping
    seed: int = 0  # seeds init, per-step noise and data order (all pure functions of seed, step)
    device: str = "auto"  # auto | cpu | cuda ("auto": cuda when available; DDP: cuda:LOCAL_RANK)
    bf16: bool = False  # run forward passes under bf16 autocast (CPU with AMX, or GPU)
    log_every: int = 50  # steps between metrics.jsonl lines (values are means over the window)
    ckpt_every: int = 1000  # steps between checkpoints (the last step is always saved)
    sample_every: int = 1000  # steps between PNG grids of prior samples and reconstructions; 0: off
    sample_n: int = 16  # images per sample / reconstruction grid
    judge_every: int = 0  # steps between S-Acc checks of prior samples (MNIST datasets); 0: off
    judge_n: int = 200  # prior samples judged per S-Acc check (fixed seed; >= 20)
    time_limit_s: float = 0.0  # stop after the step at which this train() call has run this many
    # wall-clock seconds (checkpoint, metrics, samples and judge as at the last step); 0: off
    keep_last: int = 3  # checkpoints kept on disk (older ones are deleted); <= 0 keeps all
    tensorboard: bool = True  # also log to RUN_DIR/tb when the tensorboard package is installed
    num_threads: int = 0  # torch CPU threads per process; 0 leaves torch's default
    progress: bool = True  # show a tqdm progress bar (rank 0 only)
    find_unused_parameters: bool = False  # DDP: allow parameters that get no gradient in a step

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step ``step``: ``lr · lr_scale(step)``, where an
        ``lr_scale.end_step`` of -1 stands for ``steps`` (the decay ends with the run)."""
        scale = self.lr_scale
        if scale.end_step == -1:
            scale = dataclasses.replace(scale, end_step=self.steps)
        return self.lr * scale(step)


#: Allowed ranges of TrainConfig fields; checked by gnm.config.check_field when a value is set
#: and before training. Fields not named here take any value of their type.
LIMITS = {"steps": ">= 0", "batch_size": ">= 1", "lr": "> 0", "seed": ">= 0",
          "log_every": ">= 1", "ckpt_every": ">= 1", "sample_every": ">= 0", "sample_n": ">= 0",
          "judge_every": ">= 0", "judge_n": ">= 20", "time_limit_s": ">= 0",
          "num_threads": ">= 0"}
