"""DDP: two gloo processes on halves of each batch update like one process on the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gnm.errors import GNMError
from gnm.train import distributed
from gnm.train.checkpoint import list_checkpoints, load_checkpoint
from gnm.train.logger import read_metrics
from gnm.train.sampler import StepBatchSampler
from gnm.train.trainer import train
from tests.test_pipeline import TINY
from tests.test_trainer import tiny_config, tiny_dataset, tiny_model

OVERRIDES = ("train.steps=3", "train.lr=0.001", "train.batch_size=8")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _worker(rank: int, world: int, init_file: str, run_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        # Seed differently per rank: DDP must broadcast rank 0's initial weights.
        train(tiny_config(*OVERRIDES), run_dir, model=tiny_model(seed=rank, deterministic=True),
              dataset=tiny_dataset())
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process_on_the_joined_batch(tmp_path):
    one = train(tiny_config(*OVERRIDES), tmp_path / "one",
                model=tiny_model(deterministic=True), dataset=tiny_dataset())
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "two")), nprocs=2,
             join=True)

    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert a["step"] == b["step"] == 3
    for key, value in one["model"].state_dict().items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6)
    # RMSprop's running mean of squared gradients checks the averaged gradients' magnitudes.
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                      strict=True):
        torch.testing.assert_close(sb["square_avg"], sa["square_avg"], rtol=1e-4, atol=1e-9)
    # Rank 0 logs the rank-averaged terms, which equal the joined batch's means.
    ma, mb = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert len(ma) == len(mb) == 3
    for ra, rb in zip(ma, mb, strict=True):
        for key in ("loss", "elbo", "kl", "grad_norm"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-5)
    assert len(list_checkpoints(tmp_path / "two")) == 1  # only rank 0 saved


def _limited_worker(rank: int, world: int, init_file: str, run_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:  # only rank 1 runs out of time (at its first step); rank 0 must stop with it
        limit = 1e-9 if rank == 1 else 1e6
        train(tiny_config("train.steps=50", f"train.time_limit_s={limit}"), run_dir,
              model=tiny_model(), dataset=tiny_dataset())
    finally:
        dist.destroy_process_group()


def test_time_limit_of_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    mp.spawn(_limited_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "run")),
             nprocs=2, join=True)  # a rank that went on alone would hang in all_reduce
    assert load_checkpoint(tmp_path / "run")["step"] == 1
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1]


def test_ranks_get_distinct_equal_slices_that_join_to_the_global_batch():
    whole = StepBatchSampler(48, 12, seed=1, start_step=0, end_step=8)
    ranks = [StepBatchSampler(48, 12, seed=1, start_step=0, end_step=8, rank=r, world_size=3)
             for r in range(3)]
    for step, batch in enumerate(whole):
        parts = [rank.batch(step) for rank in ranks]
        assert [len(p) for p in parts] == [4, 4, 4]
        assert sum(parts, []) == batch
        assert len(set(batch)) == 12  # batches do not straddle epochs here


def test_global_batch_must_split_evenly():
    ctx = distributed.DistContext(rank=0, world_size=4)
    assert distributed.per_rank_batch(32, ctx) == 8
    with pytest.raises(GNMError, match="multiple of 4"):
        distributed.per_rank_batch(30, ctx)


def test_one_process_without_torchrun_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup("cpu")
    assert not ctx.enabled and ctx.is_main and not ctx.owns_group
    assert distributed.resolve_device("cpu", ctx).type == "cpu"
    with pytest.raises(GNMError, match="train.device"):
        distributed.resolve_device("tpu", ctx)


def _torchrun(run_dir: Path, *launcher: str,
              crash: str | None = None) -> subprocess.CompletedProcess:
    """The docs' resumable DDP command (``--preset ... --resume``) on two CPU processes, via
    tests/ddp_worker.py (fake digits; ``crash`` = ``RANK:STEP`` kills that rank once)."""
    root = Path(__file__).resolve().parents[1]
    sets = ["data.size=32", "train.steps=6", "train.batch_size=4", "train.log_every=1",
            "train.ckpt_every=2", "train.sample_every=0", "train.num_threads=1",
            "train.judge_every=0", "train.progress=false", "train.tensorboard=false",
            "train.device=cpu", *(f"model.{k}={json.dumps(v)}" for k, v in TINY.items())]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    env.pop("GNM_TEST_CRASH", None)
    if crash:
        env["GNM_TEST_CRASH"] = crash
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", *launcher, str(root / "tests" / "ddp_worker.py"), "train", "--preset",
            "mnist4-cpu", "--out", str(run_dir), "--resume"]
    for assignment in sets:
        argv += ["--set", assignment]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_torchrun_restart_after_a_killed_rank_is_bit_exact(tmp_path):
    """``torchrun --max-restarts 1 ... --preset P --resume``: a fresh directory starts; after
    rank 1 dies at step 4 every rank is relaunched, resumes from the newest checkpoint (or
    from step 0 when none was written yet) and ends bit-identical to a run that never died."""
    ref = _torchrun(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    res = _torchrun(tmp_path / "crash", "--max-restarts", "1", crash="1:3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "failed (exitcode: 1) local_rank: 1" in res.stderr  # rank 1 did die once
    a, b = load_checkpoint(tmp_path / "ref"), load_checkpoint(tmp_path / "crash")
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key
    assert [r["step"] for r in read_metrics(tmp_path / "crash")] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in read_metrics(tmp_path / "crash")] == \
        [r["loss"] for r in read_metrics(tmp_path / "ref")]
