"""Model zoo: GNM (gnm.py) and its parts (structdraw, structure, render, losses); build any model
by name with :func:`gnm.models.registry.build_model`."""

from gnm.models.config import GNMConfig, ModelConfig
from gnm.models.registry import build_model, register_model

__all__ = ["GNMConfig", "ModelConfig", "build_model", "register_model"]
