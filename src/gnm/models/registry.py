"""Model registry: each model name with its class and its own config dataclass.

>>> model = build_model("mnist4-cpu", draw_steps=8)     # doctest: +SKIP

A model file registers itself with :func:`register_model`::

    @dataclass
    class ToyVAEConfig:
        name: str = "toy_vae"
        z_dim: int = 8

    @register_model("toy_vae", ToyVAEConfig)
    class ToyVAE(nn.Module): ...

Built-in models are found by name in a fresh process through :data:`BUILTIN` (name -> the
module that registers it, imported on first use), so ``load_model`` needs no import of the
model's file. A model defined elsewhere is known once its module has been imported (in Python:
``import my_models``; on the command line: ``gnm --import my_models ...``).
The model class is built as ``cls(model_config)``; its contract is in :mod:`gnm.models.base`.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from gnm.errors import GNMError

#: built-in model name -> module that registers it (imported when the name is first needed)
BUILTIN = {"gnm": "gnm.models.gnm", "vae": "gnm.models.vae", "convdraw": "gnm.models.convdraw",
           "space": "gnm.models.space", "genesis": "gnm.models.genesis"}
_MODELS: dict[str, tuple[Callable[[Any], nn.Module], type]] = {}


def register_model(name: str, config_class: type) -> Callable:
    """Class decorator: ``build_model`` builds this class for model sections whose ``name``
    is ``name``; ``config_class`` (a dataclass with a ``name`` field defaulting to ``name``)
    is the model section's type in :class:`gnm.config.Config`."""
    if not dataclasses.is_dataclass(config_class) or getattr(config_class(), "name",
                                                                None) != name:
        raise GNMError(f"register_model({name!r}): the config class must be a dataclass whose "
                       f"'name' field defaults to {name!r}.")

    def deco(cls: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        _MODELS[name] = (cls, config_class)
        return cls
    return deco


def _entry(name: str) -> tuple[Callable[[Any], nn.Module], type]:
    if name not in _MODELS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _MODELS:
        raise GNMError(f"unknown model {name!r}: the built-in models are "
                       f"{', '.join(sorted(BUILTIN))}; a model defined elsewhere must be imported "
                       "first (in Python: import its module; on the command line: gnm --import "
                       "MODULE ...).")
    return _MODELS[name]


def model_names() -> list[str]:
    """Every model name known now: the built-in ones and any registered since."""
    return sorted(set(BUILTIN) | set(_MODELS))


def config_class(name: str) -> type:
    """The config dataclass of model ``name`` (imports a built-in model's module if needed)."""
    return _entry(name)[1]


def resolve_model_config(preset_or_config: Any = None, **overrides: Any) -> Any:
    """A fresh model config from a preset name, a :class:`gnm.config.Config`, a model config
    or a dict (its ``name`` picks the model, default ``'gnm'``), with ``overrides`` (field
    names of that model's config) applied."""
    from gnm.config import _cfg_from_dict, check_section

    if preset_or_config is None:
        base = config_class("gnm")()
    elif isinstance(preset_or_config, str):
        from gnm.presets import get_preset

        base = get_preset(preset_or_config).model
    elif isinstance(preset_or_config, dict):
        cls = config_class(preset_or_config.get("name", "gnm"))
        base = _cfg_from_dict(cls, preset_or_config, "model.")
    elif dataclasses.is_dataclass(preset_or_config) and hasattr(preset_or_config, "model"):
        base = copy.deepcopy(preset_or_config.model)
    elif dataclasses.is_dataclass(preset_or_config) and hasattr(preset_or_config, "name"):
        base = copy.deepcopy(preset_or_config)
    else:
        raise GNMError(f"build_model: expected a preset name, a Config or a model config, got "
                       f"{type(preset_or_config).__name__}.")
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise GNMError(f"build_model: unknown model field(s) {', '.join(unknown)}; known: "
                       f"{', '.join(sorted(known))}.")
    for key, value in overrides.items():
        if isinstance(value, list):
            value = tuple(value)
        setattr(base, key, value)
    check_section(base, "model.")
    return base


def build_model(preset_or_config: Any = None, size: int | None = None,
                channels: int | None = None, **overrides: Any) -> nn.Module:
    """Build the model named by the config (``'gnm'`` by default), e.g.
    ``build_model('mnist4')``, ``build_model(cfg)``, ``build_model('arrow', draw_steps=8)``.

    The image side ``size`` (px) and ``channels`` are the preset's or Config's data section
    (``data.size``, ``data.channels``; 128 and 1 for a bare model config) unless given."""
    cfg = resolve_model_config(preset_or_config, **overrides)
    data = _data_section(preset_or_config)
    size = size if size is not None else (data.size if data is not None else 128)
    channels = channels if channels is not None else (data.channels if data is not None else 1)
    from gnm.config import DataConfig, check_field

    probe = DataConfig()
    check_field(probe, "size", size, "data.size")
    check_field(probe, "channels", channels, "data.channels")
    cls, _ = _entry(cfg.name)
    return cls(cfg, size=size, channels=channels)


def _data_section(preset_or_config: Any) -> Any:
    if isinstance(preset_or_config, str):
        from gnm.presets import get_preset

        return get_preset(preset_or_config).data
    return getattr(preset_or_config, "data", None)
