"""The training, resume and data-export cases of ``benchmarks/bad_inputs.py``.

Diverging or absurd settings, checkpoints and configs that do not fit, files a killed write
left behind, and damaged scene exports. Each setup writes into the case's own folder
(``ws.tmp``); ``{tmp}/run`` is a finished one-step run of the tiny GNM when a setup makes it.
tests/test_bad_inputs_train.py checks the same inputs with the exact messages.

Cases are dicts of :class:`bad_inputs.Case` fields (this file is loaded by bad_inputs.py, so it
does not import it back); ``train`` is that script's tiny-GNM ``gnm train`` argv.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

Workspace = Any  # bad_inputs.Workspace: ``tmp``, ``train``, ``format``


def _quiet_main(argv: list[str]) -> None:
    from gnm import cli

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if cli.main(argv) != 0:
            raise RuntimeError(f"setup command failed: gnm {' '.join(argv)}")


def _trained(ws: Workspace) -> Path:
    """Train the tiny GNM for one step into ``{tmp}/run`` (made once per case)."""
    run = ws.tmp / "run"
    if not run.exists():
        _quiet_main([*ws.train, "--out", str(run)])
    return run


def _edit_checkpoint(edit: Callable[[dict[str, Any]], None]) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        [path] = sorted((_trained(ws) / "checkpoints").glob("step_*.pt"))
        state = torch.load(path, weights_only=True)
        edit(state)
        torch.save(state, path)
    return setup


def _foreign_keys(state: dict[str, Any]) -> None:
    model = state["model"]
    for key in sorted(model)[:3]:
        del model[key]
    model["old_head.weight"] = torch.zeros(2)


def _wrong_shape(state: dict[str, Any]) -> None:
    key = sorted(state["model"])[0]
    state["model"][key] = torch.zeros(3)


def _nan_weights(state: dict[str, Any]) -> None:
    for value in state["model"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))


def _config_only(edit: Callable[[dict[str, Any]], None] | None = None,
                 text: str | None = None) -> Callable[[Workspace], None]:
    """A run killed before its first checkpoint: config.json (edited, or replaced by ``text``)."""
    def setup(ws: Workspace) -> None:
        run = _trained(ws)
        shutil.rmtree(run / "checkpoints")
        (run / "metrics.jsonl").unlink(missing_ok=True)
        if text is not None:
            (run / "config.json").write_text(text)
        elif edit is not None:
            cfg = json.loads((run / "config.json").read_text())
            edit(cfg)
            (run / "config.json").write_text(json.dumps(cfg))
    return setup


def _stale_tmp(ws: Workspace) -> None:
    run = _trained(ws)
    (run / "checkpoints" / ".step_00000002.pt.k3v9x1.tmp").write_bytes(b"PK\x03\x04 half")
    (run / ".config.json.a1b2c3.tmp").write_text("{")


def _damaged_metrics(ws: Workspace) -> None:
    with open(_trained(ws) / "metrics.jsonl", "ab") as f:
        f.write(b'[1]\n\xff\xfe{"step": 9')


MAKE = ["data", "make", "mnist4", "--n", "25", "--shard-size", "10", "--size", "32",
        "--quiet", "--out", "{tmp}/d"]


def _export_then(damage: Callable[[Path], None]) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        out = ws.tmp / "d"
        _quiet_main([ws.format(a) for a in MAKE])
        damage(out)
    return setup


def _cut_and_delete(out: Path) -> None:
    shard = out / "shards" / "00001.npz"
    shard.write_bytes(shard.read_bytes()[:300])
    (out / "shards" / "00002.npz").unlink()


def _bad_manifest(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["shards"][1]["sha256"]
    (out / "manifest.json").write_text(json.dumps(manifest))


def _older_scenes(out: Path) -> None:
    """An export made by a gnm whose generator was at scene version 0 (before any recorded)."""
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["scene_version"] = 0
    (out / "manifest.json").write_text(json.dumps(manifest))


def Case(name: str, argv: list[str], setup: Callable[[Workspace], None] | None = None,
         expect: str = "", kind: str = "error", quick: bool = False) -> dict[str, Any]:
    """The fields of one :class:`bad_inputs.Case`."""
    return {"name": name, "argv": argv, "setup": setup, "expect": expect, "kind": kind,
            "quick": quick}


def cases(train: list[str]) -> list[dict[str, Any]]:
    """Every case of this file; ``train`` is the tiny GNM's ``gnm train`` argv."""
    return [*train_cases(train), *resume_cases(train), *data_cases(), *prior_cases()]


def train_cases(train: list[str]) -> list[dict[str, Any]]:
    """Settings that would diverge or crash, checked before (or stopped during) training."""
    run = [*train, "--out", "{tmp}/run"]

    def sets(*assignments: str) -> list[str]:
        return [*run, *(x for s in assignments for x in ("--set", s))]

    return [
        Case("train: huge learning rate (train.lr=1e6)",
             sets("train.lr=1e6", "train.steps=3", "train.ckpt_every=2"), None,
             "became non-finite (NaN or inf)", quick=True),
        Case("train --set train.lr=nan", sets("train.lr=nan"), None,
             "train.lr=nan must be a finite number", quick=True),
        Case("train --set train.lr=1e39", sets("train.lr=1e39"), None,
             "must be a positive number <= 1e+30"),
        Case("train --set train.lr_scale.end=-1", sets("train.lr_scale.end=-1"), None,
             "train.lr_scale.end=-1.0 must be a number >= 0"),
        Case("train --set train.sample_n=0", sets("train.sample_every=1", "train.sample_n=0"),
             None, "train.sample_n=0 must be an integer >= 1"),
    ]


def resume_cases(train: list[str]) -> list[dict[str, Any]]:
    """--resume from checkpoints and configs that do not fit, or that a killed write left."""
    resume = [*train, "--out", "{tmp}/run", "--resume", "--set", "train.steps=2"]
    return [
        Case("train --resume: checkpoint with missing and unexpected keys", resume,
             _edit_checkpoint(_foreign_keys), "3 missing key(s)", quick=True),
        Case("train --resume: checkpoint of another shape", resume,
             _edit_checkpoint(_wrong_shape), "does not fit the model the config builds"),
        Case("train --resume with another optimizer", [*resume, "--set", "train.optimizer=rmsprop"],
             _trained, "the config differs in train.optimizer"),
        Case("train --resume: config.json but no checkpoint", ["train", "--out", "{tmp}/run",
                                                               "--resume"],
             _config_only(), "has config.json but no checkpoint yet", kind="accept"),
        Case("train --resume: config.json with a wrong-typed value",
             ["train", "--out", "{tmp}/run", "--resume"],
             _config_only(lambda c: c["train"].update(steps="many")),
             "train.steps='many' must be an integer", quick=True),
        Case("train --resume: unreadable config.json", ["train", "--out", "{tmp}/run",
                                                        "--resume"],
             _config_only(text='{"data": {"si'), "config.json cannot be read as a config"),
        Case("train --resume: temporary files of a killed write", resume, _stale_tmp,
             "removed 2 temporary file(s) left by a write killed midway", kind="accept"),
        Case("train --resume: damaged metrics.jsonl", resume, _damaged_metrics,
             "trained to step 2", kind="accept"),
        Case("sample from a diverged checkpoint (NaN weights)",
             ["sample", "{tmp}/run", "--n", "2", "--out", "{tmp}/s.npz"],
             _edit_checkpoint(_nan_weights), "hold NaN or inf values", quick=True),
    ]


def data_cases() -> list[dict[str, Any]]:
    """Re-running ``gnm data make`` over a damaged export."""
    return [
        Case("data make over a truncated and a deleted shard", MAKE,
             _export_then(_cut_and_delete), "rebuilt 2 damaged or missing file(s)",
             kind="accept", quick=True),
        Case("data make over a damaged manifest", MAKE, _export_then(_bad_manifest),
             "is unreadable or not a gnm manifest"),
        Case("data make over an export of an older scene version", MAKE,
             _export_then(_older_scenes), "scenes of version 0, but this gnm makes version 1"),
    ]


def prior_cases() -> list[dict[str, Any]]:
    """refit-prior, fit-prior and sample --prior with inputs they cannot use."""
    run = "{tmp}/run"
    return [
        Case("refit-prior --steps 0", ["refit-prior", run, "--out", "{tmp}/r", "--steps", "0"],
             _trained, "needs --steps >= 1"),
        Case("refit-prior into a run that has checkpoints", ["refit-prior", run, "--out", run],
             _trained, "already holds a checkpoint"),
        Case("fit-prior --k abc", ["fit-prior", run, "--k", "abc"], _trained,
             "--k 'abc' must be a comma list"),
        Case("fit-prior --k 0", ["fit-prior", run, "--k", "0"], _trained,
             "component counts must be integers >= 1"),
        Case("fit-prior --n 10", ["fit-prior", run, "--n", "10"], _trained,
             "--n 10 is too few training scenes", quick=True),
        Case("sample --prior gmm before fit-prior",
             ["sample", run, "--prior", "gmm", "--n", "2", "--out", "{tmp}/s.npz"], _trained,
             "fit it first with gnm fit-prior", quick=True),
    ]
