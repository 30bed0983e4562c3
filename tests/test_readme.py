"""Every command the README shows runs, so the README stays true.

The README's ``bash`` blocks are read line by line; each command must have an entry in
:data:`CHEAP`, which says how this test runs it quickly (the same command with extra arguments
that make it small: a 32-px GNM, a few steps, 20 samples; fake digits instead of MNIST). A
command added to the README without an entry fails :func:`test_every_readme_command_is_covered`.
The Python snippet is executed as written.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gnm import cli
from tests.conftest import load_benchmark
from tests.test_pipeline import TINY

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

#: Overrides that make any MNIST preset a 32-px GNM that trains in milliseconds.
SMALL = ["data.size=32", "train.steps=4", "train.batch_size=4", "train.log_every=2",
         "train.ckpt_every=2", "train.sample_every=4", "train.judge_every=0",
         "train.progress=false", "train.tensorboard=false"]
SMALL += [f"model.{k}={json.dumps(v)}" for k, v in TINY.items()]
SETS = [a for s in SMALL for a in ("--set", s)]
MORE_STEPS = ["--set", "train.steps=6"]  # a resumed run goes on for a few steps
FEW = ["--n", "20"]
FULL_EVAL = ["--n", "20", "--dsteps-cap", "50", "--ll-k", "2", "--ll-n", "2"]

#: README command -> how it is run here: ("gnm", extra argv) runs it in-process with the extra
#: arguments appended; ("make-demo", None) runs `gnm demo` as `make demo` does; ("script", argv)
#: runs a benchmark's main() with these arguments instead; ("torchrun", extra) is run in
#: test_torchrun_command; ("skip", why) is not run here.
CHEAP: dict[str, tuple[str, object]] = {
    "make demo": ("make-demo", FEW),
    "make test": ("skip", "it is the run these tests are part of"),
    "make test-slow": ("skip", "its own target: the slow tests"),
    "gnm data make mnist4 --split test --n 1000 --out data/mnist4-test": ("gnm", ["--n", "5"]),
    "gnm train --preset mnist4-cpu --out runs/m4": ("gnm", SETS),
    "gnm train --out runs/m4 --resume": ("gnm", MORE_STEPS),
    "gnm sample runs/m4 --n 1000 --out samples.npz": ("gnm", FEW),
    "gnm fit-prior runs/m4": ("gnm", ["--n", "200", "--k", "2,4", "--quiet"]),
    "gnm sample runs/m4 --prior gmm --n 1000 --out gmm.npz": ("gnm", FEW),
    "gnm show runs/m4 --out figs/": ("gnm", []),
    "gnm judge --dataset mnist4 --images samples.npz": ("gnm", []),
    "gnm eval runs/m4 --out eval/": ("gnm", FEW),
    "gnm eval runs/m4 --metrics all --n 1000 --out eval/": ("gnm", FULL_EVAL),
    "gnm demo --model runs/m4 --out out/m4": ("gnm", FEW),
    "gnm demo --train --minutes 5": ("gnm", ["--minutes", "0.02", *FEW, "--size", "32"]),
    "torchrun --nproc_per_node 2 -m gnm train --preset mnist4 --out runs/m4-ddp --resume": (
        "torchrun", None),
    "python benchmarks/results_table.py --write README.md": (
        "script", ("results_table", ["--check", str(README)])),  # never rewrite it in a test
    "python benchmarks/bad_inputs.py": ("script", ("bad_inputs", ["--quick"])),
    "python benchmarks/judge_validation.py --out docs": (
        "script", ("judge_validation", ["--n-real", "20", "--n-corrupt", "20", "--out", "jv"])),
}


def readme_commands(text: str | None = None) -> list[str]:
    """The command lines of the README's ``bash`` blocks, comments stripped, in order."""
    text = README.read_text() if text is None else text
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_readme_commands_are_read_from_bash_blocks():
    text = "x\n```bash\ngnm a --b c   # say\n\n# only a comment\n```\n```python\nno\n```\n"
    assert readme_commands(text) == ["gnm a --b c"]


def test_every_readme_command_is_covered():
    missing = [c for c in readme_commands() if c not in CHEAP]
    assert not missing, f"README commands without a cheap run in CHEAP: {missing}"


@pytest.fixture
def fake_world(tmp_path, monkeypatch, fake_mnist):
    """A fresh working directory and fake MNIST digits for everything that loads them."""
    for where in ("gnm.data.mnist.load_mnist", "gnm.demo.load_mnist"):
        monkeypatch.setattr(where, lambda *a, **k: fake_mnist)
    monkeypatch.setattr("gnm.demo.mnist_on_disk", lambda *a, **k: True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tiny_demo_training(monkeypatch):
    import gnm.demo_train as demo_train
    from tests.test_demo_cli import tiny_config

    monkeypatch.setattr(demo_train, "get_preset", lambda name: tiny_config())
    monkeypatch.setattr(demo_train, "TRAIN_SETTINGS", {
        **demo_train.TRAIN_SETTINGS, "batch_size": 4, "log_every": 2, "sample_every": 3,
        "judge_every": 4, "judge_n": 20})


def test_every_readme_command_runs(fake_world, monkeypatch):
    _tiny_demo_training(monkeypatch)
    ran = []
    for command in readme_commands():
        kind, extra = CHEAP[command]
        if kind in ("skip", "torchrun"):
            continue
        if kind == "make-demo":
            rc = cli.main(["demo", *extra])
        elif kind == "script":
            name, argv = extra
            module = load_benchmark(name)
            if name == "judge_validation":
                monkeypatch.setattr(module, "load_mnist", lambda *a, **k: _fake())
            rc = module.main(argv)
        else:
            rc = cli.main(shlex.split(command)[1:] + list(extra))
        assert rc in (0, None), f"README command failed (exit {rc}): {command}"
        ran.append(command)
    assert "gnm train --preset mnist4-cpu --out runs/m4" in ran
    assert (fake_world / "runs/m4/config.json").is_file()
    assert (fake_world / "eval/eval.json").is_file()


def _fake():
    from tests.conftest import make_fake_mnist

    return make_fake_mnist()


def test_readme_python_snippet_runs(fake_world):
    snippet = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["scenes"].shape == (16, 1, 64, 64)
    assert scope["out"]["loss"].requires_grad and "boxes" in scope["parts"]


@pytest.mark.mnist
def test_torchrun_command(tmp_path):
    """The README's torchrun line, with two gloo processes, on the real MNIST digits."""
    import os

    data = Path(os.environ.get("GNM_DATA", ROOT / "data"))
    if not (data / "mnist" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"no MNIST under {data}/mnist")
    [command] = [c for c in readme_commands() if CHEAP.get(c, ("",))[0] == "torchrun"]
    argv = shlex.split(command)
    assert argv[0] == "torchrun" and "--resume" in argv, command
    extra = [*SETS, "--set", "train.num_threads=1", "--set", f"data.data_dir={data}"]
    run = [sys.executable, "-m", "torch.distributed.run", *argv[1:], *extra]
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = argv[argv.index("--out") + 1]
    assert (tmp_path / out / "checkpoints").is_dir()


def test_every_relative_link_in_the_docs_resolves():
    """README.md and docs/**/*.md link only to files that exist (the README is the front door:
    a dead link there is the first thing a newcomer meets)."""
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    dead = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not (page.parent / target.split("#")[0]).exists():
                dead.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not dead, f"dead links: {dead}"
