"""Feed the ``gnm`` command bad inputs and check that each gets one clear sentence.

Every case runs ``gnm.cli.main(argv)`` in this process, in a fresh temporary folder, after its
setup (which may write damaged files or simulate a full disk / read-only folder / missing GPU by
patching). Verdicts:

``ok``            as expected: an error case exits non-zero with one ``gnm: error:`` line that
                  contains the expected words (a warning case: exit 0 and ``gnm: warning:``)
``TRACEBACK``     an exception escaped ``cli.main``
``SILENT``        exit 0 on a bad input (or a warning case without its warning)
``WRONG``         non-zero exit but not the expected message (or an accept case that failed)
``HALF-WRITTEN``  a temporary or partial file was left in the output folder

MNIST digits are replaced by synthetic squares, so the script needs no download. Prints JSON
and a Markdown table; ``--out DIR`` writes bad_inputs.json/.md; ``--quick`` runs a fast subset.

    python benchmarks/bad_inputs.py [--quick] [--only WORD] [--out docs/results/bad_inputs]

To add cases, write a function returning a list of :class:`Case` and append it to ``GROUPS``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import importlib.util
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnm.testing import break_writes, synthetic_mnist

VERDICTS = ("ok", "TRACEBACK", "SILENT", "WRONG", "HALF-WRITTEN")
#: A tiny GNM (32 px) for every case that needs a trained model or trains one.
TINY = {"enc_filters": "[8,16,32]", "enc_kernels": "[4,4,4]",
        "enc_strides": "[2,2,2]", "draw_steps": 1, "z_step_dim": 4, "draw_hidden": 8,
        "draw_input": 4, "interaction_hidden": "[16]", "gdec_hidden": "[16]",
        "struct_hidden": "[8]", "z_what_dim": 4, "glimpse_filters": "[8]",
        "glimpse_kernels": "[1,3]", "glimpse_upscales": "[4,2]"}
TRAIN_SETS = ["train.steps=1", "train.batch_size=2", "train.progress=false",
              "train.tensorboard=false", "train.sample_every=0", "data.size=32",
              *(f"model.{k}={v}" for k, v in TINY.items())]
TRAIN = ["train", "--preset", "mnist4-cpu", *(x for s in TRAIN_SETS for x in ("--set", s))]


@dataclass
class Case:
    """One input: ``argv`` (``{name}`` is replaced by :class:`Workspace` attributes, e.g.
    ``{tmp}``, ``{run}``, ``{images}``), a ``setup(ws)`` run first, and what must come out:
    ``expect`` words in the message; ``kind`` ``error`` (non-zero exit), ``warning`` (exit 0
    with a warning) or ``accept`` (exit 0, ``expect`` in the output)."""

    name: str
    argv: list[str]
    setup: Callable[[Workspace], None] | None = None
    expect: str = ""
    kind: str = "error"
    quick: bool = False
    out: str = "{tmp}"  # the folder that must hold no temporary or partial file afterwards


@dataclass
class Workspace:
    """A case's fresh folder ``tmp`` plus shared inputs made once (``run``, ``weights``,
    ``images``) and ``patch`` for setups (undone after the case)."""

    root: Path
    tmp: Path = field(init=False)
    train: list[str] = field(default_factory=lambda: list(TRAIN))  # the tiny GNM's train argv
    _made: dict[str, Path] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def patch(self, obj: Any, name: str, value: Any) -> None:
        """Set ``obj.name = value`` until the case ends."""
        old = getattr(obj, name)
        setattr(obj, name, value)
        self._stack.callback(setattr, obj, name, old)

    def format(self, text: str) -> str:
        return text.format_map(_Lazy(self))

    @property
    def run(self) -> Path:
        """A run directory holding a checkpoint of a tiny random GNM."""
        if "run" not in self._made:
            import gnm
            from gnm.config import set_override
            from gnm.presets import get_preset
            from gnm.train.checkpoint import save_checkpoint

            cfg = get_preset("mnist4-cpu")
            for s in TRAIN_SETS:
                set_override(cfg, s)
            torch.manual_seed(0)
            save_checkpoint(self.root / "run", 1, gnm.build_model(cfg), None, cfg)
            self._made["run"] = self.root / "run"
        return self._made["run"]

    @property
    def weights(self) -> Path:
        """The tiny GNM exported as safetensors."""
        if "weights" not in self._made:
            from gnm.train.checkpoint import export_weights

            self._made["weights"] = export_weights(self.run, self.root / "mnist4.safetensors")
        return self._made["weights"]

    @property
    def images(self) -> Path:
        """24 random 32-px images in an .npz (key ``images``)."""
        if "images" not in self._made:
            rng = np.random.default_rng(0)
            np.savez(self.root / "images.npz",
                     images=(rng.random((24, 32, 32, 1)) * 255).astype(np.uint8))
            self._made["images"] = self.root / "images.npz"
        return self._made["images"]


class _Lazy(dict):
    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws

    def __missing__(self, key: str) -> str:
        return str(getattr(self.ws, key))


# ---------------------------------------------------------------------------- the cases
WRITERS = {  # command -> argv writing under {tmp}/out
    "train": [*TRAIN, "--out", "{tmp}/out/run"],
    "sample": ["sample", "{run}", "--n", "2", "--out", "{tmp}/out/s.npz"],
    "eval": ["eval", "{run}", "--metrics", "sacc", "--n", "20", "--quiet", "--out",
             "{tmp}/out/ev"],
    "export": ["export", "{run}", "--out", "{tmp}/out/w.safetensors"],
    "judge --json": ["judge", "--dataset", "mnist4", "--images", "{images}", "--quiet",
                     "--json", "{tmp}/out/j.json"],
    "show": ["show", "{run}", "--out", "{tmp}/out/pics"],
    "demo": ["demo", "--model", "{weights}", "--n", "20", "--size", "32", "--out",
             "{tmp}/out/demo"],
    "data make": ["data", "make", "mnist4", "--n", "3", "--size", "32", "--quiet", "--out",
                  "{tmp}/out/scenes"],
}


def _broken(code: int) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        (ws.tmp / "out").mkdir()
        break_writes(ws.patch, ws.tmp / "out", code)
    return setup


def _file_in_the_way(ws: Workspace) -> None:
    (ws.tmp / "out").write_text("a regular file where the output folder should be")


def _torch_save_fails(ws: Workspace) -> None:
    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos; "
                           "PytorchStreamWriter failed writing file data/0: file write failed")
    ws.patch(torch, "save", save)


def write_cases() -> list[Case]:
    """Disk full, read-only folder, no permission, --out under a regular file, torch.save."""
    cases = []
    for cmd, argv in WRITERS.items():
        quick = cmd in ("train", "sample", "judge --json", "data make")
        cases += [
            Case(f"{cmd}: disk full (ENOSPC)", argv, _broken(errno.ENOSPC), "no space left",
                 quick=quick),
            Case(f"{cmd}: read-only file system (EROFS)", argv, _broken(errno.EROFS),
                 "read-only", quick=quick),
            Case(f"{cmd}: folder without write permission (EACCES)", argv,
                 _broken(errno.EACCES), "permission denied"),
            Case(f"{cmd}: --out under a regular file", argv, _file_in_the_way,
                 "is a file, not a folder", quick=quick),
        ]
    cases.append(Case("train: torch.save fails on checkpoint (inline_container)",
                      [*TRAIN, "--out", "{tmp}/out/run"], _torch_save_fails, "torch.save failed",
                      quick=True))
    return cases


def _no_gpu(ws: Workspace) -> None:
    ws.patch(torch.cuda, "is_available", lambda: False)


def config_cases() -> list[Case]:
    """Config values and options out of range or of the wrong type; --device without a GPU."""
    run = [*TRAIN, "--out", "{tmp}/run"]
    cases = [Case(f"train --set {s}", [*run, "--set", s], None, want, quick=True)
             for s, want in [("model.draw_steps=0", "model.draw_steps=0 is out of range"),
                             ("train.seed=-1", "train.seed=-1 is out of range"),
                             ("data.num_workers=-1", "data.num_workers=-1 is out of range"),
                             ("model.enc_filters=abc", "must be a list of integers")]]
    sample = ["sample", "{run}", "--n", "2", "--out", "{tmp}/s.npz"]
    cases += [Case(f"sample --batch-size {b}", [*sample, "--batch-size", b], None,
                   f"--batch-size {b} is out of range", quick=b == "0") for b in ("0", "-3")]
    for cmd in ("sample", "eval", "show"):
        cases.append(Case(f"{cmd} --device cuda without a GPU",
                          [*WRITERS[cmd], "--device", "cuda"], _no_gpu, "needs a GPU",
                          quick=cmd == "sample"))
    cases.append(Case("train --set train.device=cuda without a GPU",
                      [*run, "--set", "train.device=cuda"], _no_gpu, "no CUDA device"))
    return cases


def _images_file(name: str, make: Callable[[], np.ndarray], cut: bool = False):
    def setup(ws: Workspace) -> None:
        path = ws.tmp / name
        np.savez_compressed(path, images=make())
        if cut:
            data = path.read_bytes()
            path.write_bytes(data[:len(data) // 2])
    return setup


def _rand(n: int, side: int) -> np.ndarray:
    return (np.random.default_rng(0).random((n, side, side, 1)) * 255).astype(np.uint8)


def _nan() -> np.ndarray:
    x = np.full((25, 64, 64, 1), 0.5, np.float32)
    x[3, 1, 1] = np.nan
    return x


def _not_png(ws: Workspace) -> None:
    (ws.tmp / "pngs").mkdir()
    (ws.tmp / "pngs" / "a.png").write_bytes(b"not an image at all")


def _export(fmt: str) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        from gnm.data.store import export_scenes

        export_scenes("mnist4", "test", 6, ws.tmp / "scenes", size=32, fmt=fmt, progress=False)
    return setup


def judge_cases() -> list[Case]:
    """Images that cannot be judged; the data make folder and few images, which can."""
    j = ["judge", "--dataset", "mnist4", "--quiet", "--images"]
    return [
        Case("judge: truncated .npz", [*j, "{tmp}/cut.npz"],
             _images_file("cut.npz", lambda: _rand(30, 64), cut=True), "not a readable .npz",
             quick=True),
        Case("judge: a non-PNG file named .png", [*j, "{tmp}/pngs"], _not_png,
             "not a readable PNG", quick=True),
        Case("judge: NaN images", [*j, "{tmp}/nan.npz"], _images_file("nan.npz", _nan),
             "NaN or infinite", quick=True),
        Case("judge: 24-px images (too small for digits)", [*j, "{tmp}/small.npz"],
             _images_file("small.npz", lambda: _rand(25, 24)), "too small", quick=True),
        Case("judge: 0 images", [*j, "{tmp}/none.npz"],
             _images_file("none.npz", lambda: _rand(0, 64)), "holds no images", quick=True),
        Case("judge: 5 images (fewer than 20)", [*j, "{tmp}/five.npz"],
             _images_file("five.npz", lambda: _rand(5, 64)), "interval", kind="warning"),
        Case("judge: the folder gnm data make wrote (npz)", [*j, "{tmp}/scenes"], _export("npz"),
             "judging 6 images of 32 px from the mnist4/test export", kind="accept",
             quick=True),
        Case("judge: the folder gnm data make wrote (png)", [*j, "{tmp}/scenes"], _export("png"),
             "judging 6 images of 32 px from the mnist4/test export", kind="accept"),
    ]


def train_resume_data_cases() -> list[Case]:
    """Training settings, --resume over damaged runs, data make over damaged exports: the cases
    of ``bad_inputs_train.py`` beside this file."""
    path = Path(__file__).with_name("bad_inputs_train.py")
    spec = importlib.util.spec_from_file_location("bad_inputs_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [Case(**fields) for fields in module.cases(TRAIN)]


def _small_vae(ws: Workspace) -> None:
    """A tiny random VAE's weights at {tmp}/vae.safetensors (config in the metadata)."""
    import json

    from safetensors.torch import save_file

    from gnm.config import Config, DataConfig, to_dict
    from gnm.models.registry import build_model
    from gnm.models.vae import VAEConfig

    cfg = Config(data=DataConfig(size=32), model=VAEConfig(
        enc_filters=(8, 8, 16), enc_kernels=(4, 4, 4), enc_strides=(2, 2, 2), latent_hidden=8,
        z_dim=4, dec_filters=(8,), dec_kernels=(1, 3), dec_upscales=(8, 4)))
    torch.manual_seed(0)
    save_file(build_model(cfg).state_dict(), str(ws.tmp / "vae.safetensors"),
              metadata={"gnm_config": json.dumps(to_dict(cfg))})


def _gnm_weights_as_vae(ws: Workspace) -> None:
    """The tiny GNM's weights stored with a VAE config (a GNM checkpoint read as a VAE)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    _small_vae(ws)
    with safe_open(str(ws.tmp / "vae.safetensors"), framework="pt") as f:
        meta = f.metadata()
    state = torch.load(next((ws.run / "checkpoints").glob("*.pt")), weights_only=False)
    save_file(state["model"], str(ws.tmp / "gnm_as_vae.safetensors"),
              metadata={"gnm_config": json.dumps(json.loads(meta["gnm_config"]))})


def baseline_cases() -> list[Case]:
    """Baselines (issue 24): an unknown model name, a capability the model lacks, weights of
    another model."""
    return [
        Case("train --set model.name=nope (unknown model)", [*TRAIN, "--out", "{tmp}/r", "--set",
                                                              "model.name=nope"], None,
             "unknown model 'nope'", quick=True),
        Case("eval --metrics ap50 of a VAE (it cannot decompose)",
             ["eval", "{tmp}/vae.safetensors", "--metrics", "ap50", "--n", "20", "--quiet",
              "--out", "{tmp}/ev"], _small_vae, "needs a model that can decompose scenes",
             quick=True),
        Case("eval of GNM weights stored with a VAE config",
             ["eval", "{tmp}/gnm_as_vae.safetensors", "--quiet", "--n", "20", "--out",
              "{tmp}/ev"], _gnm_weights_as_vae, "do not fit the 'vae' model", quick=True),
    ]


def prior_demo_cases() -> list[Case]:
    """Samplers beyond the paper and the bundled models (issue 23): an unknown rule for K, a
    dataset with no bundled model, a bundled model and a model of one's own at once."""
    return [
        Case("fit-prior --select bic (unknown rule)",
             ["fit-prior", "{weights}", "--select", "bic"], None, "invalid choice: 'bic'",
             quick=True),
        Case("demo --dataset arrow (no bundled model)",
             ["demo", "--dataset", "arrow", "--out", "{tmp}/d"], None,
             "no bundled model for --dataset 'arrow'", quick=True),
        Case("demo --dataset mnist4 --model W (both)",
             ["demo", "--dataset", "mnist4", "--model", "{weights}", "--out", "{tmp}/d"], None,
             "--model and --dataset exclude each other", quick=True),
    ]


GROUPS: list[Callable[[], list[Case]]] = [write_cases, config_cases, judge_cases,
                                          train_resume_data_cases, baseline_cases,
                                          prior_demo_cases]


# ---------------------------------------------------------------------------- running
def _message(case: Case, out: str, err: str, exc: BaseException | None) -> str:
    if exc is not None:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    if case.kind == "accept":
        said = [x for x in (out + err).splitlines() if case.expect in x]
        if said:
            return said[0]
    for line in err.splitlines():
        if line.startswith("gnm") and (": error:" in line or ": warning:" in line):
            return line
    lines = [x for x in (out + err).splitlines() if x.strip()]
    return lines[-1] if lines else ""


def _leftovers(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and (p.name.endswith(".tmp") or p.name.startswith(".")))


def verdict(case: Case, code: int | None, out: str, err: str, message: str,
            exc: BaseException | None, leftovers: list[str]) -> str:
    """The verdict of one case (see the module docstring)."""
    if exc is not None or "Traceback" in err:
        return "TRACEBACK"
    if leftovers:
        return "HALF-WRITTEN"
    if case.kind == "accept":
        return "ok" if code == 0 and case.expect in out + err else "WRONG"
    if case.kind == "warning":
        if code != 0:
            return "WRONG"
        return "ok" if "gnm: warning:" in message and case.expect in message else "SILENT"
    if code == 0:
        return "SILENT"
    errors = [x for x in err.splitlines() if ": error:" in x]
    return "ok" if len(errors) == 1 and case.expect in errors[0] else "WRONG"


def run_case(case: Case, root: Path, shared: Workspace) -> dict[str, Any]:
    """Run one case in a fresh folder under ``root``; return its row."""
    from gnm import cli

    ws = shared
    ws.tmp = Path(tempfile.mkdtemp(dir=root, prefix="case-"))
    out, err = io.StringIO(), io.StringIO()
    code, exc = None, None
    t0 = time.perf_counter()
    with ws._stack:
        argv = [ws.format(a) for a in case.argv]  # shared inputs are made before any patch
        if case.setup is not None:
            case.setup(ws)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv)
        except SystemExit as stop:  # argparse: usage errors
            code = stop.code if isinstance(stop.code, int) else 2
        except BaseException as caught:  # noqa: BLE001 - a traceback is what this looks for
            exc = caught
    ws._stack = contextlib.ExitStack()
    seconds = time.perf_counter() - t0
    out_s, err_s = out.getvalue(), err.getvalue()
    left = _leftovers(Path(ws.format(case.out)))
    message = _message(case, out_s, err_s, exc)
    shown = message.replace(str(ws.tmp), "{tmp}").replace(str(ws.root), "{root}")
    return {"input": case.name, "argv": " ".join(case.argv), "kind": case.kind,
            "exit": code, "message": shown,
            "verdict": verdict(case, code, out_s, err_s, message, exc, left),
            "leftovers": left, "seconds": round(seconds, 2)}


def run_cases(quick: bool = False, only: str | None = None) -> list[dict[str, Any]]:
    """Run every case (``quick``: the fast subset; ``only``: names containing that word)."""
    cases = [c for group in GROUPS for c in group()
             if (c.quick or not quick) and (only is None or only in c.name)]
    digits = synthetic_mnist()
    root = Path(tempfile.mkdtemp(prefix="gnm-bad-inputs-"))
    shared = Workspace(root)
    rows = []
    try:
        with contextlib.ExitStack() as stack:
            for where, name, stand_in in (
                    ("gnm.data.mnist", "load_mnist", lambda *a, **k: digits),
                    ("gnm.demo", "load_mnist", lambda *a, **k: digits),
                    ("gnm.demo", "mnist_on_disk", lambda *a, **k: True)):
                module = importlib.import_module(where)
                stack.callback(setattr, module, name, getattr(module, name))
                setattr(module, name, stand_in)
            for case in cases:
                rows.append(run_case(case, root, shared))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| input | exit | first line of the message | verdict |", "|---|---|---|---|"]
    for r in rows:
        msg = r["message"].replace("|", "\\|")
        lines.append(f"| {r['input']} | {r['exit']} | {msg} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the fast subset (< 60 s)")
    p.add_argument("--only", default=None, help="only cases whose name contains this")
    p.add_argument("--out", default=None, help="folder for bad_inputs.json and bad_inputs.md")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = run_cases(args.quick, args.only)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    result = {"benchmark": "bad_inputs", "quick": args.quick, "cases": len(rows),
              "verdicts": counts, "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    from gnm.io import emit_report

    summary = ", ".join(f"{v} {n}" for v, n in counts.items())
    emit_report(result, table(rows), args.out, "bad_inputs",
                f"# Bad inputs to the gnm command\n\nCommand: `python benchmarks/bad_inputs.py"
                f"{' --quick' if args.quick else ''}`; {len(rows)} cases: {summary}.")
    return 0 if counts["ok"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
