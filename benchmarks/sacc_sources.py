"""Where a model's structure failures come from: S-Acc along six routes (gnm.eval.sources).

Judges real test scenes, reconstructions, and scenes decoded from posterior or prior z_g with
the modes or a draw of p(z_s|z_g). Prints JSON and a Markdown table; ``--out DIR`` also writes
``sacc_sources.json`` / ``.md`` there.

    python benchmarks/sacc_sources.py MODEL [--n 400] [--seed 0] [--out DIR]

MODEL is a run directory, checkpoint or exported weights file (default: the bundled model).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from gnm.demo import default_model_path
from gnm.errors import GNMError
from gnm.eval.run import real_test_scenes
from gnm.eval.sources import sources_table, structure_sources
from gnm.io import emit_report
from gnm.train.checkpoint import load_config, load_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(default_model_path()))
    ap.add_argument("--n", type=int, default=400, help="test scenes and prior draws (>= 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--out", default=None, help="also write sacc_sources.json/.md here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = load_config(args.model)
        model = load_model(args.model).eval()
        x = real_test_scenes(cfg, args.n, seed=args.seed)["image"]
        t0 = time.time()
        result = structure_sources(model, x, cfg.data.dataset, seed=args.seed)
    except GNMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update(model=args.model, seed=args.seed, seconds=round(time.time() - t0, 1))
    emit_report(result, sources_table(result), args.out, "sacc_sources",
                f"Structure sources of {args.model} (n = {args.n}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
