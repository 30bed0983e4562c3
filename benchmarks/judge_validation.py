"""Validate the S-Acc judge: real test scenes must pass, corrupted scenes must fail.

For each dataset: ``--n-real`` real test scenes (goal: >= 97% judged ok) at 128 px and 64 px,
and ``--n-corrupt`` scenes of each corruption kind of :mod:`gnm.eval.corrupt` (goal: >= 95%
judged not ok). Prints JSON and a Markdown table; ``--out DIR`` writes judge_validation.json/.md.

    python benchmarks/judge_validation.py [--n-real 1000] [--n-corrupt 200] [--out docs]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from gnm.data.mnist import load_mnist
from gnm.data.scenes import SceneGenerator
from gnm.eval.corrupt import KINDS, corrupted_batch
from gnm.eval.digits import load_classifier
from gnm.eval.judge import judge_images
from gnm.io import emit_report

PASS_GOAL, REJECT_GOAL = 0.97, 0.95


def validate(dataset: str, n_real: int, n_corrupt: int, seed: int, classifier, mnist) -> list:
    rows = []
    for size in (128, 64):
        gen = SceneGenerator(dataset, "test", size, seed, mnist=mnist)
        images, _ = gen.batch(range(n_real))
        r = judge_images(images, dataset, classifier, progress=False)
        rows.append({"dataset": dataset, "case": f"real test scenes, {size}px", "n": r["n"],
                     "judged_ok": r["sacc"], "strict_ok": r["sacc_strict"], "goal": "ok >= 0.97",
                     "met": r["sacc"] >= PASS_GOAL,
                     "reasons": {k: v for k, v in r["reasons"].items() if v}})
    gen = SceneGenerator(dataset, "test", 128, seed, mnist=mnist)
    kinds = sorted(set(KINDS["mnist4"]) | set(KINDS["mnist10"]), key=str)
    for kind in kinds:
        idx = [i for i in range(20 * n_corrupt) if kind in KINDS[gen.layout(i)[0]]][:n_corrupt]
        if dataset != "mnist4_10" and kind not in KINDS[dataset]:
            continue
        r = judge_images(corrupted_batch(gen, idx, kind), dataset, classifier, progress=False)
        rejected = 1 - r["sacc"]
        rows.append({"dataset": dataset, "case": f"corrupted: {kind}", "n": r["n"],
                     "judged_ok": r["sacc"], "strict_ok": r["sacc_strict"],
                     "goal": "rejected >= 0.95", "met": rejected >= REJECT_GOAL,
                     "reasons": {k: v for k, v in r["reasons"].items() if v}})
    return rows


def table(rows: list) -> str:
    lines = ["| dataset | case | n | judged ok | strict ok | goal | met | verdicts |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items())
        lines.append(f"| {r['dataset']} | {r['case']} | {r['n']} | {r['judged_ok']:.3f} | "
                     f"{r['strict_ok']:.3f} | {r['goal']} | {'yes' if r['met'] else 'NO'} | "
                     f"{reasons} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-real", type=int, default=1000)
    p.add_argument("--n-corrupt", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mnist, classifier = load_mnist(), load_classifier(args.weights)
    rows = []
    for dataset in ("mnist4", "mnist10", "mnist4_10"):
        rows += validate(dataset, args.n_real, args.n_corrupt, args.seed, classifier, mnist)
    result = {"benchmark": "judge_validation", "n_real": args.n_real,
              "n_corrupt": args.n_corrupt, "seed": args.seed,
              "all_met": all(r["met"] for r in rows),
              "rows": rows}
    emit_report(result, table(rows), args.out, "judge_validation",
                f"# S-Acc judge validation\n\nCommand: `python benchmarks/judge_validation.py "
                f"--n-real {args.n_real} --n-corrupt {args.n_corrupt} --out {args.out}`")
    if not result["all_met"]:
        print("some goals were not met", flush=True)
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
