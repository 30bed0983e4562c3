"""Arrow Room rendering throughput: images/s of ArrowRoomGenerator.batch (layout sampling,
ray casting, shading, visibility rejection, ground truth), median of ``--repeats`` batches.

    python benchmarks/arrow_render.py [--size 128] [--batch 64] [--repeats 3] [--threads 2]
        [--preview docs/img/arrow_preview.png]

Prints one JSON object and a Markdown table. The goal of issue 25 is >= 50 images/s at 128 px
on 2 cores (read /proc/cpuinfo's flags beside the figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from gnm.data.arrow_room import ArrowRoomGenerator
from gnm.viz.grid import make_grid, save_png


def measure(size: int, batch: int, repeats: int, shadow_samples: int) -> dict:
    """Median images/s over ``repeats`` batches of distinct scenes."""
    gen = ArrowRoomGenerator("train", size, shadow_samples=shadow_samples)
    rates = []
    for r in range(repeats):
        t = time.perf_counter()
        gen.batch(range(r * batch, (r + 1) * batch))
        rates.append(batch / (time.perf_counter() - t))
    return {"size": size, "batch": batch, "shadow_samples": shadow_samples,
            "images_per_s": round(statistics.median(rates), 1),
            "all": [round(x, 1) for x in rates]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preview", default=None, help="also write a 4x4 grid of scenes here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(args.size, args.batch, args.repeats, s) for s in (4, 1)]
    flags = open("/proc/cpuinfo").read()
    out = {"threads": args.threads, "avx512_bf16": "avx512_bf16" in flags, "rows": rows}
    print(json.dumps(out))
    print("| size | shadow samples | images/s (median) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['shadow_samples']} | {r['images_per_s']} |")
    if args.preview:
        images, _ = ArrowRoomGenerator("train", args.size).batch(range(16))
        save_png(make_grid(images, nrow=4), args.preview)


if __name__ == "__main__":
    main()
