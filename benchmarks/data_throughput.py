"""On-the-fly scene generation throughput (goal: >= 2,000 MNIST-4 scenes/s at 128 px).

Measures ``SceneDataset[i]`` (generation + conversion to a float tensor, as the trainer sees it)
in one process, for each dataset and size; median of ``--repeats`` timed runs of ``--n`` scenes.
Prints a JSON object and a Markdown table; ``--json FILE`` also writes the JSON.

    python benchmarks/data_throughput.py [--n 2000] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from gnm.data.mnist import load_mnist
from gnm.data.scenes import DATASETS, SceneDataset
from gnm.io import atomic_write_json

GOAL = 2000.0


def measure(dataset: str, size: int, n: int, repeats: int, mnist) -> dict:
    ds = SceneDataset(dataset, "train", size, seed=0, mnist=mnist)
    ds[0]  # warm-up
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(r * n, (r + 1) * n):
            ds[i]
        rates.append(n / (time.perf_counter() - start))
    return {"dataset": dataset, "size": size, "scenes_per_s": statistics.median(rates),
            "min": min(rates), "max": max(rates)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    mnist = load_mnist()
    rows = [measure(d, s, args.n, args.repeats, mnist) for s in (128, 64) for d in DATASETS]
    result = {"benchmark": "data_throughput", "goal_mnist4_128_scenes_per_s": GOAL,
              "machine": platform.processor() or platform.machine(), "threads": args.threads,
              "n": args.n, "repeats": args.repeats, "results": rows}
    mnist4 = next(r for r in rows if r["dataset"] == "mnist4" and r["size"] == 128)
    result["goal_met"] = mnist4["scenes_per_s"] >= GOAL
    print(json.dumps(result, indent=1))
    print("\n| dataset | size | scenes/s (median) | min | max |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['size']} | {r['scenes_per_s']:.0f} | {r['min']:.0f} | "
              f"{r['max']:.0f} |")
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
