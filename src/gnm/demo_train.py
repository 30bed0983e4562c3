"""``gnm demo --train``: train a small GNM from scratch for a few wall-clock minutes and show it.

The model section comes from the ``mnist4-cpu`` preset as it is; the training settings are
:data:`TRAIN_SETTINGS` plus ``train.time_limit_s`` (the minutes asked for). The run lives in
``OUT/run`` (config, metrics.jsonl, checkpoints, sample grids), its weights are exported to
``OUT/model/mnist4.safetensors`` (so ``gnm demo --model`` can show them again), and
``OUT/index.html`` holds the report of :mod:`gnm.demo` for the fresh model, plus learning curves
(ELBO, inferred objects and S-Acc against wall-clock minutes) and the training-time samples.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from gnm.data.registry import build_dataset
from gnm.demo import (
    MIN_N,
    Stages,
    describe_model,
    load_mnist_stage,
    model_sections,
    write_demo_page,
    write_previews,
)
from gnm.errors import GNMError
from gnm.io import check_writable
from gnm.presets import get_preset
from gnm.train.checkpoint import export_weights, latest_checkpoint, load_config, load_model
from gnm.train.logger import read_metrics
from gnm.train.trainer import train
from gnm.viz import report
from gnm.viz.curves import final_values, learning_curves

PRESET = "mnist4-cpu"
#: Trainer settings of the demo run (the model settings are the preset's).
TRAIN_SETTINGS: dict[str, Any] = {
    "optimizer": "adam", "lr": 3e-4, "batch_size": 16,
    "steps": 10_000_000,  # a cap only: the time limit ends the run
    "log_every": 50, "sample_every": 500, "sample_n": 16,
    "judge_every": 500, "judge_n": 100,  # S-Acc of 100 prior samples, about 2 s per check
    "ckpt_every": 1000, "keep_last": 2, "tensorboard": False,
}
GRIDS_SHOWN = 8  # training-time sample grids on the page (evenly spread over the run)


def demo_config(minutes: float, seed: int = 0) -> Any:
    """The run's config: the preset's data and model, :data:`TRAIN_SETTINGS`, the time limit."""
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise GNMError(f"--minutes {minutes!r} must be a positive number of minutes.")
    cfg = get_preset(PRESET)
    for key, value in TRAIN_SETTINGS.items():
        setattr(cfg.train, key, value)
    cfg.train.time_limit_s = float(minutes) * 60.0
    cfg.train.seed = seed
    return cfg


def _grids(out: Path, run: Path, records: list[dict[str, Any]]) -> list[str]:
    """Figures of the prior-sample grids written during training (at most GRIDS_SHOWN)."""
    found = sorted((run / "samples").glob("step_*_prior.png"))
    if len(found) > GRIDS_SHOWN:
        pick = {round(i * (len(found) - 1) / (GRIDS_SHOWN - 1)) for i in range(GRIDS_SHOWN)}
        found = [p for i, p in enumerate(found) if i in pick]
    minutes = {int(r["step"]): r["elapsed"] / 60 for r in records if "elapsed" in r}
    figs = []
    for p in found:
        step = int(p.name.split("_")[1])
        when = f" ({minutes[step]:.1f} min)" if step in minutes else ""
        figs.append(report.figure(out, p.relative_to(out).as_posix(),
                                  f"Prior samples after {step:,} steps{when}.", scale=1.5))
    return figs


def training_section(out: Path, run: Path, minutes: float) -> tuple[str, dict[str, Any]]:
    """Learning curves PNG + the training section; returns it and the final logged values."""
    records = read_metrics(run)
    learning_curves({"demo run": records}, keys=("elbo", "num_objects", "sacc"),
                    path=out / "learning_curves.png", panel_size=(420, 320))
    final = final_values(records)
    ci = final["sacc_ci95"]
    rows = [("preset (model settings)", PRESET), ("time limit", f"{minutes:g} min"),
            ("steps done", final["step"]),
            ("wall-clock at the last record", f"{(final['minutes'] or 0):.1f} min"),
            ("last ELBO (nats per image)",
             f"{final['elbo']:.1f}" if final["elbo"] is not None else "-"),
            ("last inferred objects per scene",
             f"{final['num_objects']:.2f}" if final["num_objects"] is not None else "-"),
            ("last S-Acc during training", f"{final['sacc']:.3f} ({ci[0]:.3f}-{ci[1]:.3f}, "
             f"n={TRAIN_SETTINGS['judge_n']})" if final["sacc"] is not None else "-"),
            ("settings", ", ".join(f"{k} {v}" for k, v in TRAIN_SETTINGS.items()
                                   if k in ("optimizer", "lr", "batch_size", "judge_every")))]
    curves = report.figure(out, "learning_curves.png", "Learning curves against wall-clock "
                           "minutes: ELBO and inferred objects per scene (means over "
                           f"{TRAIN_SETTINGS['log_every']} training steps) and S-Acc of "
                           f"{TRAIN_SETTINGS['judge_n']} prior samples every "
                           f"{TRAIN_SETTINGS['judge_every']} steps.", scale=1.0,
                           max_width=1300)
    html = report.section("Training", report.table(rows), curves,
                          *_grids(out, run, records),
                          intro=f"Trained from scratch here for {minutes:g} minutes; the run "
                          f"directory {run.name}/ holds its config, metrics.jsonl and "
                          "checkpoints (continue with gnm train --out ... --resume).")
    return html, final


def run_demo_training(out: str | Path = "out/demo-train", minutes: float = 5.0, n: int = 200,
                      seed: int = 0, data_dir: str | None = None, size: int = 128,
                      quiet: bool = False) -> Path:
    """Train for ``minutes`` (wall-clock), then write the demo report of the trained model
    with its learning curves into ``out``; return ``out/index.html``."""
    t0 = time.perf_counter()
    if n < MIN_N:
        raise GNMError(f"--n {n} is too few samples for an S-Acc interval; use at least {MIN_N}.")
    cfg = demo_config(minutes, seed)
    out = check_writable(out)
    run = out / "run"
    if latest_checkpoint(run) is not None:
        raise GNMError(f"{run} already holds a training run; pass another --out (or delete "
                       f"{run} to start over).")
    cfg.train.progress = not quiet
    stages = Stages(8, quiet)
    mnist = load_mnist_stage(stages, data_dir)
    with stages(f"training {PRESET} for {minutes:g} min (adam, batch "
                f"{cfg.train.batch_size})", talks=True):
        data = build_dataset(cfg.data, "train", mnist=mnist)
        train(cfg, run, dataset=data)
    with stages("exporting the weights and drawing the learning curves"):
        weights = export_weights(run, out / "model" / f"{cfg.data.dataset}.safetensors")
        model = load_model(weights)
        info = describe_model(weights, model, load_config(weights))
        train_html, final = training_section(out, run, minutes)
    blocks, metrics = model_sections(model, cfg, out, n, seed, mnist, stages)
    with stages("dataset previews"):
        previews = write_previews(out, mnist, size, seed=seed)
    total = time.perf_counter() - t0
    with stages("writing the report"):
        metrics["training"] = final
        page = write_demo_page(out, info, metrics, [train_html, *blocks, previews], stages,
                               total, title=f"gnm demo: a GNM trained here for {minutes:g} min")
    if not quiet:
        print(f"demo done in {(time.perf_counter() - t0) / 60:.1f} min "
              f"({torch.get_num_threads()} torch thread(s)): {page}; weights {weights}")
    return page
