"""Typed configuration: dataclasses with a comment per field, named presets, key=value overrides.

A run's :class:`Config` is saved as ``config.json`` beside its checkpoints, so a checkpoint
always carries the exact configuration that made it. Overrides use dotted keys, e.g.
``--set train.lr=3e-4 --set model.draw_steps=8``; values are parsed as YAML scalars/lists.

Every value is checked against its field's type and the section's ``LIMITS`` (e.g.
``model.draw_steps`` ``>= 1``) when it is set and again before training
(:func:`check_config`), so a bad value is one sentence naming the key, the value and the
allowed range instead of a crash deep inside the model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from gnm.errors import GNMError
from gnm.models.config import GNMConfig, ModelConfig  # GNM's config; ModelConfig: old name
from gnm.schedule import Schedule  # re-exported: the one curriculum type
from gnm.train.config import TrainConfig


@dataclass
class DataConfig:
    """Which scenes to train on."""

    dataset: str = "mnist4"  # mnist4 | mnist10 | mnist4_10
    size: int = 128  # image side in pixels (the model is built for this size)
    channels: int = 1  # image channels: 1 for MNIST scenes, 3 for Arrow Room
    seed: int = 0  # scene generation seed (scene i is a function of seed, split, i)
    data_dir: str | None = None  # MNIST location; None -> $GNM_DATA or ./data
    path: str | None = None  # train on scenes stored by `gnm data make` here (None: on the fly)
    num_workers: int = 0  # DataLoader worker processes
    colours: tuple[str, ...] = ()  # arrow only: colour names to draw from (empty: all 8)
    shapes: tuple[str, ...] = ()  # arrow only: non-arrow shapes to draw from (empty: all 3)


#: Allowed ranges of DataConfig fields (see check_field); the generator needs >= 32 px.
LIMITS = {"size": ">= 32", "channels": ">= 1", "seed": ">= 0", "num_workers": ">= 0"}
_KINDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
          tuple[int, ...]: "a list of integers (e.g. [8, 16, 32])",
          tuple[float, ...]: "a list of finite numbers (e.g. [-1.6, 0.0, 0.0, 0.0])",
          tuple[str, ...]: "a list of names (e.g. [red, blue])",
          str | None: "a string or null"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _limits(cls: type) -> dict[str, str]:
    import sys

    return getattr(sys.modules[cls.__module__], "LIMITS", {}) if cls is not Schedule else {}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _fits(kind: Any, v: Any) -> bool:
    if kind is bool:
        return isinstance(v, bool)
    if kind is int:
        return _is_int(v)
    if kind is float:
        return _is_number(v)
    if kind is str:
        return isinstance(v, str)
    if kind == str | None:
        return v is None or isinstance(v, str)
    if kind in (tuple[int, ...], tuple[float, ...]):
        item = _is_int if kind == tuple[int, ...] else _is_number
        return isinstance(v, (tuple, list)) and all(item(x) for x in v)
    if kind == tuple[str, ...]:
        return isinstance(v, (tuple, list)) and all(isinstance(x, str) for x in v)
    return True  # a type this check does not know (e.g. a model's own): left to the model


def _show(v: Any) -> str:
    return repr(list(v)) if isinstance(v, tuple) else repr(v)


def _in_range(v: float, rule: str) -> bool:
    op, bound = rule.split()
    return v >= float(bound) if op == ">=" else v > float(bound)


def check_field(section: Any, name: str, value: Any, key: str) -> None:
    """Raise a GNMError unless ``value`` fits field ``name`` of config dataclass ``section``:
    its type (int, number, list of integers, ...) and its range in the section's ``LIMITS``.
    ``key`` is the dotted name shown in the message (e.g. ``model.draw_steps``)."""
    cls = type(section)
    kind = _hints(cls).get(name)
    if kind is Schedule or isinstance(value, Schedule):
        if not isinstance(value, Schedule):
            raise GNMError(f"{key}={_show(value)} must be a schedule: a mapping with start_step, "
                           "end_step, start and end.")
        for sub in fields(Schedule):
            check_field(value, sub.name, getattr(value, sub.name), f"{key}.{sub.name}")
        return
    if not _fits(kind, value):
        raise GNMError(f"{key}={_show(value)} must be {_KINDS.get(kind, kind)}.")
    rule = _limits(cls).get(name)
    if rule is None:
        return
    entries = value if isinstance(value, (tuple, list)) else [value]
    if not all(_in_range(v, rule) for v in entries):
        what = "every entry must be" if isinstance(value, (tuple, list)) else "it must be"
        noun = "an integer" if kind in (int, tuple[int, ...]) else "a number"
        raise GNMError(f"{key}={_show(value)} is out of range: {what} {noun} {rule}.")


def check_section(section: Any, prefix: str) -> None:
    """:func:`check_field` on every field of config dataclass ``section`` (``prefix``: the
    dotted path of the section, e.g. ``"model."``)."""
    for f in fields(section):
        check_field(section, f.name, getattr(section, f.name), f"{prefix}{f.name}")


def check_config(cfg: Any) -> None:
    """Check every value of a :class:`Config` (types and ranges); raise a GNMError naming the
    first bad key, its value and the allowed range."""
    for f in fields(cfg):
        section = getattr(cfg, f.name)
        if dataclasses.is_dataclass(section):
            check_section(section, f"{f.name}.")


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
    """Apply one ``section.key=value`` override in place (value parsed as YAML).
    ``model.name=NAME`` naming another model replaces the model section by that model's config
    at its defaults (so put it before the other ``model.*`` overrides)."""
    if "=" not in assignment:
        raise GNMError(f"override {assignment!r} is not of the form section.key=value "
                       "(e.g. train.lr=3e-4).")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise GNMError(f"override {assignment!r}: cannot parse value {raw!r}.") from exc
    parts = key.strip().split(".")
    if parts == ["model", "name"] and isinstance(cfg, Config) and value != cfg.model.name:
        from gnm.models.registry import config_class

        if not isinstance(value, str):
            raise GNMError(f"override {assignment!r}: model.name takes a model name.")
        cfg.model = config_class(value)()  # another model: its own config, at its defaults
        return
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
                if isinstance(value, Schedule):
                    check_field(target, part, value, key)
                else:
                    check_section(value, f"{key}.")
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
            if not dataclasses.is_dataclass(old):
                check_field(target, part, value, key.strip())
            setattr(target, part, value)
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise GNMError(f"override {assignment!r}: {'.'.join(parts[:i + 1])} is not a "
                               "section.")


def _legacy_image_keys(model: dict[str, Any], data: DataConfig) -> dict[str, Any]:
    """Configs saved before image size and channels moved to the data section carry them as
    ``model.img_size`` / ``model.channels``: they must agree with ``data`` and are dropped.
    An old ``model.fg_mask_force`` that is off (0) is dropped; one that is on is an error."""
    out = dict(model)
    force = out.pop("fg_mask_force", None)  # replaced by alpha_force (the reference's meaning)
    if force is not None and (force.get("start", 0.0) or force.get("end", 0.0)):
        raise GNMError("this config forces object masks (model.fg_mask_force), which gnm no "
                       "longer implements; use model.alpha_force (the foreground alpha forced "
                       "everywhere, as the reference GNM does) and train again.")
    for old, new in (("img_size", "size"), ("channels", "channels")):
        if old in out:
            value = out.pop(old)
            if value != getattr(data, new):
                raise GNMError(f"this config has model.{old}={value!r} but data.{new}="
                               f"{getattr(data, new)!r}; image size and channels are now only "
                               f"data.{new}: make them agree (or drop model.{old}).")
    return out


@dataclass
class Config:
    """Everything a run needs: data, model (incl. loss and schedules) and trainer settings.

    ``model`` is the config dataclass of the model it names (``model.name``; GNM's is
    :class:`gnm.models.config.GNMConfig`), as registered with
    :func:`gnm.models.registry.register_model`."""

    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=GNMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Rebuild a config saved with :func:`to_dict` (unknown keys are an error); the model
        section's dataclass is the one registered for its ``name`` (default ``'gnm'``)."""
        if not isinstance(data, dict):
            raise GNMError(f"a config must be a mapping of sections, got {type(data).__name__}.")
        rest = {k: v for k, v in data.items() if k != "model"}
        cfg = _cfg_from_dict(cls, rest, "")
        model = data.get("model")
        if model is not None:
            if not isinstance(model, dict):
                raise GNMError(f"config section 'model' must be a mapping, got {model!r}.")
            from gnm.models.registry import config_class

            name = model.get("name", "gnm")
            if not isinstance(name, str):
                raise GNMError(f"model.name={name!r} must be a string.")
            model = _legacy_image_keys(model, cfg.data)
            cfg.model = _cfg_from_dict(config_class(name), model, "model.")
        return cfg


__all__ = ["Config", "DataConfig", "GNMConfig", "ModelConfig", "Schedule", "TrainConfig",
           "check_config", "check_field", "check_section", "field", "set_override", "to_dict"]
