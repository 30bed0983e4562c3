"""S-Acc of a model's prior samples against the temperature of p(z_g) (gnm.eval.temperature).

T = 1 is the model's prior (what S-Acc reports); T < 1 scales the global latent's noise down.
For MNIST-4 the table also counts the top-left class d of the samples that keep the rule, to
show whether a lower T narrows the scenes. Prints JSON and a Markdown table; ``--out DIR`` also
writes ``prior_temperature.json`` / ``.md`` there.

    python benchmarks/prior_temperature.py MODEL [--temps 1,0.9,0.8,0.7,0.5] [--n 1000] [--out DIR]

MODEL is a run directory, checkpoint or exported weights file (default: the bundled model).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from gnm.demo import default_model_path
from gnm.errors import GNMError
from gnm.eval.temperature import sweep_table, temperature_sweep
from gnm.io import emit_report
from gnm.models.gnm import check_temperature
from gnm.train.checkpoint import load_config, load_model


def _temps(text: str) -> list[float]:
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise GNMError(f"--temps must be a comma list of numbers, e.g. 1,0.8,0.6; got {text!r}."
                       ) from None
    for t in temps:
        check_temperature(t)
    return temps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=str(default_model_path()))
    ap.add_argument("--temps", default="1,0.9,0.8,0.7,0.5", help="comma list of temperatures")
    ap.add_argument("--n", type=int, default=1000, help="prior samples per temperature (>= 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--out", default=None, help="also write prior_temperature.json/.md here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        temps = _temps(args.temps)
        cfg = load_config(args.model)
        model = load_model(args.model).eval()
        t0 = time.time()
        result = temperature_sweep(model, cfg.data.dataset, temps, n=args.n, seed=args.seed)
    except GNMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update(model=args.model, seconds=round(time.time() - t0, 1))
    emit_report(result, sweep_table(result), args.out, "prior_temperature",
                f"S-Acc against the temperature of p(z_g), {args.model} (n = {args.n} per row, "
                f"seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
