"""Typed configuration: dataclasses with a comment per field, named presets, key=value overrides.

A run's :class:`Config` is saved as ``config.json`` beside its checkpoints, so a checkpoint
always carries the exact configuration that made it. Overrides use dotted keys, e.g.
``--set train.lr=3e-4 --set model.draw_steps=8``; values are parsed as YAML scalars/lists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from gnm.errors import GNMError
from gnm.schedule import Schedule  # re-exported: the one curriculum type


@dataclass
class DataConfig:
    """Which scenes to train on."""

    dataset: str = "mnist4"  # mnist4 | mnist10 | mnist4_10
    size: int = 128  # image side in pixels
    seed: int = 0  # scene generation seed (scene i is a function of seed, split, i)
    data_dir: str | None = None  # MNIST location; None -> $GNM_DATA or ./data
    num_workers: int = 0  # DataLoader worker processes


def _cfg_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a dict, recursing into nested dataclasses and Schedules."""
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise GNMError(f"unknown config key '{where}{key}'; known keys: "
                           f"{', '.join(sorted(known))}.")
        default = getattr(cls(), key) if _has_defaults(cls) else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = _cfg_from_dict(type(default), value, f"{where}{key}.")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _has_defaults(cls: type) -> bool:
    return all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in fields(cls))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def set_override(cfg: Any, assignment: str) -> None:
    """Apply one ``section.key=value`` override in place (value parsed as YAML)."""
    if "=" not in assignment:
        raise GNMError(f"override {assignment!r} is not of the form section.key=value "
                       "(e.g. train.lr=3e-4).")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise GNMError(f"override {assignment!r}: cannot parse value {raw!r}.") from exc
    parts = key.strip().split(".")
    target = cfg
    for i, part in enumerate(parts):
        names = {f.name for f in fields(target)}
        if part not in names:
            raise GNMError(f"override {assignment!r}: unknown key {'.'.join(parts[:i + 1])!r}; "
                           f"known here: {', '.join(sorted(names))}.")
        if i == len(parts) - 1:
            old = getattr(target, part)
            if dataclasses.is_dataclass(old):
                if not isinstance(value, dict):
                    raise GNMError(f"override {assignment!r}: {key} is a section; set one of its "
                                   "keys or give a mapping.")
                value = _cfg_from_dict(type(old), {**to_dict(old), **value}, f"{key}.")
            elif isinstance(old, bool) and not isinstance(value, bool):
                raise GNMError(f"override {assignment!r}: {key} takes true or false.")
            elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif isinstance(old, (int, float)) and not isinstance(old, bool) \
                    and isinstance(value, str):
                try:  # YAML reads 3e-4 (no dot) as a string
                    value = type(old)(float(value)) if isinstance(old, float) else int(value)
                except ValueError:
                    raise GNMError(f"override {assignment!r}: {key} takes a number.") from None
            elif isinstance(old, tuple) and isinstance(value, list):
                value = tuple(value)
            setattr(target, part, value)
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise GNMError(f"override {assignment!r}: {'.'.join(parts[:i + 1])} is not a "
                               "section.")


__all__ = ["DataConfig", "Schedule", "field", "set_override", "to_dict"]


# The sections are defined next to the code that owns them; imported late to avoid cycles.
from gnm.models.config import ModelConfig  # noqa: E402
from gnm.train.config import TrainConfig  # noqa: E402


@dataclass
class Config:
    """Everything a run needs: data, model (incl. loss and schedules) and trainer settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Rebuild a config saved with :func:`to_dict` (unknown keys are an error)."""
        return _cfg_from_dict(cls, data, "")


__all__ += ["Config", "ModelConfig", "TrainConfig"]
