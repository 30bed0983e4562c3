"""Trainer configuration (owned by the trainer). See gnm/config.py for how configs combine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Optimisation, logging and checkpointing. Fields are filled in by the trainer."""

    steps: int = 1000  # optimiser steps to run
