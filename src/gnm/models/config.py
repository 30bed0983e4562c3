"""Model configuration (owned by the model code). See gnm/config.py for how configs combine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Architecture and loss of a model. Fields are filled in by the GNM implementation."""

    name: str = "gnm"  # registry name of the model
