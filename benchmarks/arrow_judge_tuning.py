"""Tune the Arrow Room judge's thresholds on val-split scenes (never test scenes).

Renders ``--n-real`` val scenes and ``--n-corrupt`` of each corruption of
:mod:`gnm.data.arrow_corrupt`, runs the judge's network once on them, then sweeps ``PEAK``,
``NMS``, ``ARROW_MERGE`` and ``SURE`` of :mod:`gnm.eval.arrow_judge` offline. Each setting
gets the share of real scenes judged ok and the worst corruption's share; the table is sorted
by the smallest gap to the goals (real ≥ 0.95, every corruption ≤ 0.05). Prints JSON and a
Markdown table.

    python benchmarks/arrow_judge_tuning.py [--n-real 300] [--n-corrupt 100] [--size 64]
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch

from gnm.data.arrow_corrupt import KINDS, corrupted_batch
from gnm.data.arrow_room import ArrowRoomGenerator
from gnm.eval import arrow_judge as aj
from gnm.eval import arrow_net as an

GRID = {"PEAK": (0.15, 0.2, 0.3, 0.4), "NMS": (3, 5, 7), "ARROW_MERGE": (0.0, 6.0, 9.0),
        "SURE": (0.5,)}


@torch.no_grad()
def cache(net, images) -> tuple[torch.Tensor, torch.Tensor]:
    """The 64-px images ``[N, 3, 64, 64]`` and the net's outputs ``[N, 19, 64, 64]``."""
    x = an.to_side(aj._as_float_images(images))
    return x, torch.cat([net(x[i:i + 64]) for i in range(0, len(x), 64)])


@torch.no_grad()
def pass_rate(net, x: torch.Tensor, out: torch.Tensor) -> float:
    """Share judged ok with the module's current thresholds."""
    found = [aj.read_objects(o) for o in out]
    for i in range(0, len(found), 64):
        aj.read_shapes(net, x[i:i + 64], found[i:i + 64])
    return sum(aj.decide(aj.merge_arrows(f)).ok for f in found) / len(found)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-real", type=int, default=300)
    p.add_argument("--n-corrupt", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = aj.load_arrow_net(args.weights)
    gen = ArrowRoomGenerator("val", args.size, args.seed)
    sets = {"real": cache(net, gen.batch(range(args.n_real))[0])}
    for kind in KINDS:
        sets[kind] = cache(net, corrupted_batch(gen, range(args.n_corrupt), kind)[0])
    rows = []
    saved = {k: getattr(aj, k) for k in GRID}
    try:
        for values in itertools.product(*GRID.values()):
            for k, v in zip(GRID, values, strict=True):
                setattr(aj, k, v)
            rates = {name: pass_rate(net, *xo) for name, xo in sets.items()}
            worst = max((r, k) for k, r in rates.items() if k != "real")
            gap = max(0.0, 0.95 - rates["real"]) + max(0.0, worst[0] - 0.05)
            rows.append({**dict(zip(GRID, values, strict=True)), "real_ok": rates["real"],
                         "worst_corruption": worst[1], "worst_ok": worst[0], "gap": gap,
                         "rates": rates})
    finally:
        for k, v in saved.items():
            setattr(aj, k, v)
    rows.sort(key=lambda r: (r["gap"], -r["real_ok"]))
    print(json.dumps({"benchmark": "arrow_judge_tuning", "split": "val", "size": args.size,
                      "n_real": args.n_real, "n_corrupt": args.n_corrupt, "rows": rows},
                     indent=1))
    print("\n| " + " | ".join(GRID) + " | real ok | worst corruption | its ok |")
    print("|" + "---|" * (len(GRID) + 3))
    for r in rows[:15]:
        print("| " + " | ".join(str(r[k]) for k in GRID) + f" | {r['real_ok']:.3f} | "
              f"{r['worst_corruption']} | {r['worst_ok']:.3f} |")


if __name__ == "__main__":
    main()
