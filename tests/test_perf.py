"""gnm.perf.reuse_freed_memory: freed large blocks are reused instead of re-faulted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gnm.perf import reuse_freed_memory

# Allocate and free a 64 MiB tensor five times and count the minor page faults that costs:
# with glibc's defaults each allocation is a fresh mmap (16,384 faults of 4 KiB pages). The heap
# takes a few rounds to settle, so the count starts after ten.
PROBE = """
import json, resource, sys, torch
from gnm.perf import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
x = torch.ones(16 * 2**20)
for _ in range(10):  # the first allocations fault either way
    (x * 2).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    (x * 2).sum()
print(json.dumps({"applied": applied,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _probe(mode: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_reuse_freed_memory_removes_page_faults():
    default, reuse = _probe("default"), _probe("reuse")
    assert not default["applied"] and reuse["applied"]
    assert default["faults"] >= 5 * 16_000  # every page of every 64 MiB block, by default
    # Reused, except that the heap may grow once more while it settles (a small allocation
    # landing in the freed top chunk): at most one more block's pages, seen once in a full run.
    assert reuse["faults"] <= 16_384 + 1_000
    # GNM_MALLOC=default opts out: nothing is applied and the faults come back
    opted_out = _probe("reuse", {"GNM_MALLOC": "default"})
    assert not opted_out["applied"] and opted_out["faults"] >= 5 * 16_000


def test_reuse_freed_memory_respects_opt_out(monkeypatch):
    monkeypatch.setenv("GNM_MALLOC", "default")
    assert reuse_freed_memory() is False


def test_gnm_command_applies_it(monkeypatch, capsys, tmp_path):
    import gnm.perf
    from gnm.cli import main

    calls = []
    monkeypatch.setattr(gnm.perf, "reuse_freed_memory", lambda: calls.append(1) or True)
    out = str(tmp_path / "s.npz")  # any subcommand; this one fails fast on the missing model
    assert main(["sample", "no/such/run", "--n", "1", "--out", out]) == 2
    assert calls == [1] and "no/such/run" in capsys.readouterr().err
