"""Tune the S-Acc judge's thresholds on val-split scenes (never on the test split).

The classifier runs once per object of ``--n-real`` real val scenes (128 and 64 px) and
``--n-corrupt`` scenes of every corruption kind (128 and 64 px), for all three datasets; its
outputs are cached (``--cache``, a pickle) so that the sweep is fast. Each threshold setting is
then applied offline: the joint labelling does not depend on the thresholds, so a scene passes
iff its labelling is geometrically right and every object meets them. Prints, per setting, the
lowest pass rate of real scenes and the highest pass rate of a corruption (at 128 and 64 px).
The chosen setting is written into :mod:`gnm.eval.judge`; validate it on test scenes with
benchmarks/judge_validation.py.

    python benchmarks/judge_tuning.py [--n-real 1000] [--n-corrupt 200] [--seed 5]
"""

from __future__ import annotations

import argparse
import itertools
import pickle
from pathlib import Path

import numpy as np
import torch

from gnm.data.mnist import load_mnist
from gnm.data.scenes import SceneGenerator
from gnm.eval import judge as J
from gnm.eval.corrupt import KINDS, corrupted_batch
from gnm.eval.digits import load_classifier
from gnm.eval.objects import to_reference_scale
from gnm.io import atomic_write_bytes

SIZES = (128, 64)


def classify(n_real: int, n_corrupt: int, seed: int, classifier, mnist) -> dict:
    """``{(dataset, case, size): [(centroids, probs) per scene]}``, case = real or a kind."""
    out = {}
    for dataset in ("mnist4", "mnist10", "mnist4_10"):
        kinds = sorted(set(KINDS["mnist4"]) | set(KINDS["mnist10"]))
        for size in SIZES:
            gen = SceneGenerator(dataset, "val", size, seed, mnist=mnist)
            batches = {"real": gen.batch(range(n_real))[0]}
            for kind in kinds:
                idx = [i for i in range(20 * n_corrupt) if kind in KINDS[gen.layout(i)[0]]]
                if idx:
                    batches[kind] = corrupted_batch(gen, idx[:n_corrupt], kind)
            for case, images in batches.items():
                found = J.classify_objects(to_reference_scale(images), classifier)
                out[(dataset, case, size)] = [(c, p) for _, c, p in found]
    return out


def summarise(cached: dict) -> dict:
    """Per scene: [geometry ok, min P(label), min P(label)/P(top digit), max P(reject),
    any top class = reject], with the joint labelling found with every threshold off."""
    saved = J.PLAUSIBLE, J.REJECT_AT, J.LABEL_RATIO, J.REJECT_TOP
    J.PLAUSIBLE, J.REJECT_AT, J.LABEL_RATIO, J.REJECT_TOP = 1e-300, 2.0, 0.0, False
    out = {}
    try:
        for key, scenes in cached.items():
            rows = []
            for cents, probs in scenes:
                v = J._decide(key[0], [tuple(c) for c in cents], probs)
                if not v.labels:
                    rows.append((0.0, 0.0, 0.0, 1.0, 1.0))
                    continue
                p = probs[np.arange(len(v.labels)), v.labels]
                rows.append((float(v.ok), p.min(), (p / probs[:, :10].max(1)).min(),
                             probs[:, 10].max(), float((probs.argmax(1) == 10).any())))
            out[key] = np.array(rows, np.float64)
    finally:
        J.PLAUSIBLE, J.REJECT_AT, J.LABEL_RATIO, J.REJECT_TOP = saved
    return out


def pass_rate(a: np.ndarray, plausible: float, reject_at: float, ratio: float = 0.0,
              reject_top: bool = False) -> float:
    """Share of scenes (rows of :func:`summarise`) judged ok under these thresholds."""
    ok = (a[:, 0] > 0) & (a[:, 1] >= plausible) & (a[:, 2] >= ratio) & (a[:, 3] < reject_at)
    if reject_top:
        ok &= a[:, 4] == 0
    return float(ok.mean())


def sweep(summary: dict) -> list[dict]:
    """Every setting of the grid with its worst real and worst corrupted pass rates."""
    rows = []
    for pl, rj, ra, top in itertools.product((0.02, 0.05, 0.1, 0.2), (0.4, 0.5, 0.6, 0.7, 0.8),
                                             (0.0, 0.2), (False, True)):
        r = {k: pass_rate(a, pl, rj, ra, top) for k, a in summary.items()}
        row = {"plausible": pl, "reject_at": rj, "label_ratio": ra, "reject_top": top}
        for size in SIZES:
            row[f"real_min_{size}"] = min(v for k, v in r.items() if k[1] == "real"
                                          and k[2] == size)
            v, k = max((v, k) for k, v in r.items() if k[1] != "real" and k[2] == size)
            row[f"corrupt_max_{size}"], row[f"worst_{size}"] = v, f"{k[0]} {k[1]}"
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-real", type=int, default=1000)
    p.add_argument("--n-corrupt", type=int, default=200)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--weights", default=None)
    p.add_argument("--cache", default="judge_tuning_cache.pkl")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    if cache.is_file():
        cached = pickle.loads(cache.read_bytes())
    else:
        cached = classify(args.n_real, args.n_corrupt, args.seed, load_classifier(args.weights),
                          load_mnist())
        atomic_write_bytes(cache, pickle.dumps(cached))
    print("| P plausible | P(reject) at | ratio | top reject | real min 128 | real min 64 | "
          "corrupt max 128 | worst 128 | corrupt max 64 | worst 64 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in sweep(summarise(cached)):
        print(f"| {r['plausible']} | {r['reject_at']} | {r['label_ratio']} | "
              f"{'yes' if r['reject_top'] else 'no'} | {r['real_min_128']:.3f} | "
              f"{r['real_min_64']:.3f} | {r['corrupt_max_128']:.3f} | {r['worst_128']} | "
              f"{r['corrupt_max_64']:.3f} | {r['worst_64']} |")


if __name__ == "__main__":
    main()
