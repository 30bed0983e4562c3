"""What each ``gnm eval`` stage will cost, estimated before it starts.

The estimate is deliberately simple: seconds per unit of work (one prior sample, one test scene,
one D-Steps training step, ...) measured once with the bundled 64 px MNIST-4 model
(``src/gnm/assets/models/mnist4.safetensors``) at one torch thread on a 2-core AVX-512 CPU
(``gnm eval ... --metrics quick --n 1000``, 30 s in all, and ``--metrics all --n 200 --ll-n 20
--ll-k 20 --dsteps-cap 300`` for fd, ll and dsteps; ``eval.json``'s ``stage_seconds``),
times the number of units, times ``(image size / 64)^2``. It ignores the model's width, the
CPU and the thread count, so it is a guide to which metrics are slow, not a promise.
"""

from __future__ import annotations

from dataclasses import dataclass

from gnm.eval.metrics import QUICK, stages_for

__all__ = ["QUICK", "UNIT_SECONDS", "Stage", "fmt_seconds", "plan", "plan_lines"]

#: Seconds per unit at 64 px and one thread (see the module docstring for where they come from).
UNIT_SECONDS = {
    "samples": 0.0017,   # per prior sample (GNM sample())
    "scenes": 0.0005,    # per test scene built from MNIST digits
    "sacc": 0.016,       # per sample judged (object crops through the digit classifier)
    "decompose": 0.003,  # per test scene inferred (decompose())
    "ap": 0.0012,        # per test scene matched
    "probe": 0.005,      # per test scene (100 epochs of a small MLP over its objects)
    "fd": 0.0054,        # per image, real and generated (judge features)
    "ll": 0.001,         # per scene per importance sample (one inference + likelihood)
    "dsteps": 0.017,     # per classifier step (2 x 32 images), held-out checks included
}



@dataclass(frozen=True)
class Stage:
    """One step of an evaluation: ``key`` (a ``UNIT_SECONDS`` key), a label for the progress
    line, the work it does in words, and its estimated seconds (``upper``: at most this)."""

    key: str
    label: str
    work: str
    seconds: float
    upper: bool = False


def plan(metrics: list[str], n: int, size: int, ll_n: int, ll_k: int, dsteps_cap: int,
         dsteps_seeds: int = 3) -> list[Stage]:
    """The stages that evaluating ``metrics`` runs, in order, with their estimated seconds.

    ``n``: samples and test scenes; ``size``: image side in pixels; ``ll_n`` scenes with
    ``ll_k`` importance samples each for LL; D-Steps trains ``dsteps_seeds`` classifiers of at
    most ``dsteps_cap`` steps (its estimate is the cap, an upper bound). Shared work (prior
    samples, test scenes, decompose) is its own stage, listed before the first metric needing it.
    """
    scale = (size / 64) ** 2
    ap_label = "+".join(m for m in ("ap50", "ap") if m in metrics) or "boxes"
    what = {  # stage -> (label, work in words, units of UNIT_SECONDS)
        "samples": ("prior samples", f"draw {n:,} scenes from the prior", n),
        "sacc": ("sacc", f"judge {n:,} samples", n),
        "scenes": ("test scenes", f"build {n:,} test scenes", n),
        "decompose": ("decompose", f"infer objects in {n:,} test scenes", n),
        "ap": (ap_label, f"match boxes in {n:,} scenes", n),
        "probe": ("probe", "train the z_what classifier (100 epochs)", n),
        "fd": ("fd", f"judge features of {2 * n:,} images", 2 * n),
        "ll": ("ll", f"{ll_n:,} scenes x {ll_k} importance samples", ll_n * ll_k),
        "dsteps": ("dsteps", f"up to {dsteps_seeds} x {dsteps_cap:,} classifier steps",
                   dsteps_seeds * dsteps_cap),
    }
    return [Stage(key, what[key][0], what[key][1], UNIT_SECONDS[key] * what[key][2] * scale,
                  upper=key == "dsteps") for key in stages_for(metrics)]


def fmt_seconds(s: float) -> str:
    """``4.2`` -> ``"4 s"``, ``95`` -> ``"1.6 min"``, ``7300`` -> ``"2.0 h"``."""
    if s < 60:
        return f"{s:.0f} s" if s >= 1 else f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"


def plan_lines(stages: list[Stage]) -> list[str]:
    """The printout made before an evaluation starts: a header, then one line per stage."""
    total = sum(s.seconds for s in stages)
    lines = [f"gnm eval: {len(stages)} stages, about {fmt_seconds(total)} in all (a rough "
             "estimate from the bundled 64 px model at 1 thread; it scales with --n, image size "
             "and CPU):"]
    width = max(len(s.label) for s in stages)
    for i, s in enumerate(stages, 1):
        est = ("up to " if s.upper else "~") + fmt_seconds(s.seconds)
        lines.append(f"  [{i}/{len(stages)}] {s.label:<{width}}  {est:>12}  {s.work}")
    if any(s.key == "dsteps" for s in stages):
        lines.append("  (dsteps stops each classifier early once it tells real from generated "
                     "at 90%, so it often takes less; --dsteps-cap lowers the bound)")
    return lines
