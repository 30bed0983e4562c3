"""S-Acc of prior samples against the sampling temperature of the global latent.

A GNM sample draws z_g ~ p(z_g) (StructDRAW: z_ℓ = μ_p + σ_p·ε at each step). At temperature T
the draw is z_ℓ = μ_p + T·σ_p·ε instead (T = 1 is the model's prior, the only one S-Acc is
reported at). Sweeping T shows where the failing samples lie: if S-Acc rises as T falls, they
come from the prior's tails, where q(z_g|x) of the training scenes puts little mass. A lower T
can also narrow what the samples show, so for MNIST-4 the sweep also counts the classes d of the
top-left digit of the samples that keep the rule, and their entropy relative to the uniform
distribution over the seven classes the data has (1 = every d equally often).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gnm.errors import GNMError

#: MNIST-4's top-left class d is uniform over 0..6 in the data.
MNIST4_FIRST_CLASSES = 7


def first_class_counts(verdicts: list[dict[str, Any]]) -> list[int]:
    """Counts ``[7]`` of the top-left class d = min(labels) over the MNIST-4 verdicts that are
    ok (the rule makes the four labels d, d+1, d+2, d+3)."""
    counts = [0] * MNIST4_FIRST_CLASSES
    for v in verdicts:
        if v["ok"] and v["rule"] == "mnist4":
            counts[min(v["labels"])] += 1
    return counts


def relative_entropy(counts: list[int]) -> float:
    """Shannon entropy of ``counts`` divided by log(len(counts)): 1 for a uniform histogram,
    0 when one bin holds everything (or nothing was counted)."""
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts if c)
    return h / math.log(len(counts))


@torch.no_grad()
def temperature_sweep(model: Any, dataset: str, temperatures: list[float], n: int = 1000,
                      seed: int = 0, batch_size: int = 32, **judge_kwargs: Any
                      ) -> dict[str, Any]:
    """Judge ``n`` prior samples of ``model`` at each temperature against ``dataset``'s rule
    with the dataset's S-Acc judge (:mod:`gnm.eval.judges`; ``judge_kwargs`` go to it, e.g.
    ``classifier`` for the MNIST judge).

    Samples come from :func:`gnm.sampling.sample_images` with ``seed`` and ``batch_size`` (the
    defaults are ``gnm eval``'s, so the T = 1 row repeats its S-Acc exactly), the same noise at
    every temperature: the samples differ only by the scale of the global latent's draw.
    Returns ``{"dataset", "n",
    "seed", "rows": [{"temperature", "sacc", "ci95", "reasons", and for MNIST-4 "first_class"
    (counts of d over ok samples) and "first_class_entropy"}]}``.
    """
    from gnm.eval.judges import require_judge
    from gnm.sampling import sample_images

    if not temperatures:
        raise GNMError("give at least one temperature to sweep, e.g. 1,0.8,0.6.")
    judge = require_judge(dataset, "the temperature sweep")  # before any sample is drawn
    rows = []
    for t in temperatures:
        images = sample_images(model, n, seed=seed, batch_size=batch_size, progress=False,
                               temperature=t)
        r = judge(images, dataset, progress=False, **judge_kwargs)
        row = {"temperature": float(t), "sacc": r["sacc"], "ci95": r["ci95"],
               "reasons": {k: v for k, v in r["reasons"].items() if v and k != "ok"}}
        if dataset == "mnist4":
            row["first_class"] = first_class_counts(r["verdicts"])
            row["first_class_entropy"] = relative_entropy(row["first_class"])
        rows.append(row)
    return {"dataset": dataset, "n": n, "seed": seed, "rows": rows}


def sweep_table(result: dict[str, Any]) -> str:
    """A Markdown table of a :func:`temperature_sweep` result."""
    four = result["dataset"] == "mnist4"
    head = "| T | S-Acc | 95% CI | failures |" + (" d = 0..6 (ok samples) | entropy |" if four
                                                   else "")
    lines = [head, "|---" * (6 if four else 4) + "|"]
    for r in result["rows"]:
        fails = ", ".join(f"{k} {v}" for k, v in r["reasons"].items()) or "-"
        line = (f"| {r['temperature']:g} | {r['sacc']:.3f} | {r['ci95'][0]:.3f}-"
                f"{r['ci95'][1]:.3f} | {fails} |")
        if four:
            line += f" {' '.join(map(str, r['first_class']))} | {r['first_class_entropy']:.3f} |"
        lines.append(line)
    return "\n".join(lines)
