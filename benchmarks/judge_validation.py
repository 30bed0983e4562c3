"""Validate the S-Acc judge: real test scenes must pass, corrupted scenes must fail.

For each dataset: ``--n-real`` real test scenes (goal: >= 95% judged ok) at 128 px and 64 px,
and ``--n-corrupt`` scenes of each corruption kind of :mod:`gnm.eval.corrupt` at 128 px (goal:
>= 95% judged not ok, i.e. at most 5% pass) and at 64 px (reported, no goal: at 64 px a
half-erased digit or two digits merged 1-2.5 px apart is often not recognisable as such, see
docs/judge.md). Prints JSON and a Markdown table;
``--out DIR`` writes judge_validation.json/.md. The judge's thresholds were tuned on val-split
scenes (``--split val --seed 5``); the shipped table uses test-split scenes (the default).

    python benchmarks/judge_validation.py [--n-real 1000] [--n-corrupt 200] [--out docs]
    python benchmarks/judge_validation.py --dataset arrow [--n-real 1000] [--n-corrupt 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gnm.data.mnist import load_mnist
from gnm.data.scenes import SceneGenerator
from gnm.eval.corrupt import KINDS, corrupted_batch
from gnm.eval.digits import load_classifier
from gnm.eval.judge import JUDGE_VERSION, judge_images
from gnm.io import emit_report

PASS_GOAL, REJECT_GOAL = 0.95, 0.95
SIZES = (128, 64)


GOAL_SIZE = 128  # corruptions have a goal at this size only


def _row(dataset: str, case: str, r: dict, real: bool, goal: bool = True) -> dict:
    """One table row; ``met`` is None for a row without a goal."""
    met = r["sacc"] >= PASS_GOAL if real else 1 - r["sacc"] >= REJECT_GOAL
    text = f"ok >= {PASS_GOAL}" if real else f"ok <= {1 - REJECT_GOAL:.2f}"
    return {"dataset": dataset, "case": case, "n": r["n"], "judged_ok": r["sacc"],
            "strict_ok": r["sacc_strict"], "goal": text if goal else "none (reported)",
            "met": bool(met) if goal else None,
            "reasons": {k: v for k, v in r["reasons"].items() if v}}


def kinds_of(dataset: str) -> list[str]:
    """Corruption kinds that apply to a dataset (MNIST-4-10: those of either rule)."""
    if dataset == "mnist4_10":
        return sorted(set(KINDS["mnist4"]) | set(KINDS["mnist10"]))
    return sorted(KINDS[dataset])


def validate(dataset: str, n_real: int, n_corrupt: int, seed: int, classifier, mnist,
             split: str = "test", sizes=SIZES) -> list[dict]:
    """Rows of the validation table for one dataset: real scenes, then each corruption."""
    rows = []
    for size in sizes:
        gen = SceneGenerator(dataset, split, size, seed, mnist=mnist)
        images, _ = gen.batch(range(n_real))
        r = judge_images(images, dataset, classifier, progress=False)
        rows.append(_row(dataset, f"real {split} scenes, {size}px", r, True))
    for size in sizes:
        gen = SceneGenerator(dataset, split, size, seed, mnist=mnist)
        for kind in kinds_of(dataset):
            idx = [i for i in range(20 * n_corrupt) if kind in KINDS[gen.layout(i)[0]]]
            r = judge_images(corrupted_batch(gen, idx[:n_corrupt], kind), dataset, classifier,
                             progress=False)
            rows.append(_row(dataset, f"corrupted: {kind}, {size}px", r, False,
                             goal=size == GOAL_SIZE))
    return rows


def validate_arrow(n_real: int, n_corrupt: int, seed: int, net, split: str = "test",
                   sizes=(64, 128)) -> list[dict]:
    """Rows for the Arrow Room judge: real scenes and each corruption of
    :mod:`gnm.data.arrow_corrupt`, at 64 px (the judge's reference size and the CPU recipe's;
    goals) and 128 px (the paper's; reported with the same goals)."""
    from gnm.data.arrow_corrupt import KINDS as ARROW_KINDS
    from gnm.data.arrow_corrupt import corrupted_batch as arrow_corrupted
    from gnm.data.arrow_room import ArrowRoomGenerator
    from gnm.eval.arrow_judge import judge_arrow

    rows = []
    for size in sizes:
        gen = ArrowRoomGenerator(split, size, seed)
        images, _ = gen.batch(range(n_real))
        rows.append(_row("arrow", f"real {split} scenes, {size}px", judge_arrow(images, net=net),
                         True))
        for kind in ARROW_KINDS:
            images, _ = arrow_corrupted(gen, range(n_corrupt), kind)
            rows.append(_row("arrow", f"corrupted: {kind}, {size}px",
                             judge_arrow(images, net=net), False))
    return rows


def table(rows: list) -> str:
    """Markdown table of the rows."""
    lines = ["| dataset | case | n | judged ok | strict ok | goal | met | verdicts |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items())
        met = "-" if r["met"] is None else "yes" if r["met"] else "NO"
        lines.append(f"| {r['dataset']} | {r['case']} | {r['n']} | {r['judged_ok']:.3f} | "
                     f"{r['strict_ok']:.3f} | {r['goal']} | {met} | "
                     f"{reasons} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-real", type=int, default=1000)
    p.add_argument("--n-corrupt", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", help="test (validation) or val (tuning)")
    p.add_argument("--weights", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default="mnist", choices=("mnist", "arrow"),
                   help="mnist: the digit judge on MNIST-4, -10, -4-10 (default); arrow: the "
                   "Arrow Room judge")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    if args.dataset == "arrow":
        from gnm.data.arrow_room import SCENE_VERSION
        from gnm.eval.arrow_judge import JUDGE_VERSION as ARROW_VERSION
        from gnm.eval.arrow_judge import load_arrow_net

        rows = validate_arrow(args.n_real, args.n_corrupt, args.seed,
                              load_arrow_net(args.weights), args.split)
        _report(args, rows, start, ARROW_VERSION, "arrow_judge_validation",
                "Arrow Room judge validation", "--dataset arrow ",
                f"Goals: real scenes judged ok >= {PASS_GOAL}; each corruption judged ok <= "
                f"{1 - REJECT_GOAL:.2f}, at 64 and 128 px, on Arrow Room scenes of version "
                f"{SCENE_VERSION}. How the judge works: [judge.md](judge.md#the-arrow-room-judge).",
                {"dataset": "arrow", "scene_version": SCENE_VERSION})
        return
    mnist, classifier = load_mnist(), load_classifier(args.weights)
    rows = []
    for dataset in ("mnist4", "mnist10", "mnist4_10"):
        rows += validate(dataset, args.n_real, args.n_corrupt, args.seed, classifier, mnist,
                         args.split)
    _report(args, rows, start, JUDGE_VERSION, "judge_validation", "S-Acc judge validation", "",
            f"Goals: real scenes judged ok >= {PASS_GOAL} (128 and 64 px); each corruption "
            f"judged ok <= {1 - REJECT_GOAL:.2f} at {GOAL_SIZE} px (64-px corruptions are "
            "reported without a goal). How the judge works: [judge.md](judge.md).")
    np.seterr(all="ignore")


def _report(args: argparse.Namespace, rows: list[dict], start: float, version: int, name: str,
            title: str, flag: str, goals: str, extra: dict | None = None) -> None:
    """Print (and with ``--out`` write NAME.json/.md) one validation table; ``flag`` is the
    command-line option that chose the judge, ``goals`` the header's sentence on goals."""
    result = {"benchmark": "judge_validation", **(extra or {}), "judge_version": version,
              "split": args.split, "n_real": args.n_real, "n_corrupt": args.n_corrupt,
              "seed": args.seed, "seconds": round(time.time() - start, 1),
              "all_met": all(r["met"] is not False for r in rows), "rows": rows}
    command = (f"python benchmarks/judge_validation.py {flag}--n-real {args.n_real} --n-corrupt "
               f"{args.n_corrupt} --threads {args.threads}"
               + (f" --split {args.split} --seed {args.seed}" if args.split != "test" else "")
               + (f" --out {args.out}" if args.out else ""))
    emit_report(result, table(rows), args.out, name,
                f"# {title} (judge version {version})\n\nCommand: `{command}`. {goals}")
    if not result["all_met"]:
        print("some goals were not met", flush=True)

if __name__ == "__main__":
    main()
