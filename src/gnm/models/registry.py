"""Model registry: build any model from a preset name, a config, and field overrides.

>>> model = build_model("mnist4-cpu", draw_steps=8)     # doctest: +SKIP

Other model files (baselines) register themselves with :func:`register_model`; the model class
takes a :class:`ModelConfig` and is looked up by ``config.name``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from gnm.errors import GNMError
from gnm.models.config import ModelConfig

_MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Class decorator: make ``build_model`` build this class for ``config.name == name``."""
    def deco(cls: Callable[[ModelConfig], nn.Module]) -> Callable[[ModelConfig], nn.Module]:
        _MODELS[name] = cls
        return cls
    return deco


def _builtin() -> None:
    if "gnm" not in _MODELS:
        from gnm.models.gnm import GNM

        _MODELS["gnm"] = GNM


def model_names() -> list[str]:
    """Names a ModelConfig's ``name`` may take."""
    _builtin()
    return sorted(_MODELS)


def resolve_model_config(preset_or_config: Any = None, **overrides: Any) -> ModelConfig:
    """A fresh :class:`ModelConfig` from a preset name, a :class:`gnm.config.Config`, a
    ``ModelConfig`` or a dict, with ``overrides`` (ModelConfig field names) applied."""
    if preset_or_config is None:
        base = ModelConfig()
    elif isinstance(preset_or_config, str):
        from gnm.presets import get_preset

        base = get_preset(preset_or_config).model
    elif isinstance(preset_or_config, ModelConfig):
        base = copy.deepcopy(preset_or_config)
    elif isinstance(preset_or_config, dict):
        from gnm.config import _cfg_from_dict

        base = _cfg_from_dict(ModelConfig, preset_or_config, "model.")
    elif dataclasses.is_dataclass(preset_or_config) and hasattr(preset_or_config, "model"):
        base = copy.deepcopy(preset_or_config.model)
    else:
        raise GNMError(f"build_model: expected a preset name, Config or ModelConfig, got "
                       f"{type(preset_or_config).__name__}.")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise GNMError(f"build_model: unknown model field(s) {', '.join(unknown)}; known: "
                       f"{', '.join(sorted(known))}.")
    for key, value in overrides.items():
        if isinstance(value, list):
            value = tuple(value)
        setattr(base, key, value)
    from gnm.config import check_section

    check_section(base, "model.")
    return base


def build_model(preset_or_config: Any = None, **overrides: Any) -> nn.Module:
    """Build the model named by the config (``'gnm'`` by default), e.g.
    ``build_model('mnist4')``, ``build_model(cfg)``, ``build_model('arrow', draw_steps=8)``."""
    cfg = resolve_model_config(preset_or_config, **overrides)
    _builtin()
    if cfg.name not in _MODELS:
        raise GNMError(f"unknown model {cfg.name!r}; known models: {', '.join(model_names())}.")
    return _MODELS[cfg.name](cfg)
