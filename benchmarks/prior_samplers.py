"""Compare samplers of z_g for one model: the model's prior and fitted aggregate posteriors.

For each sampler (``prior``: the model's own p(z_g); ``gmm``: the density ``gnm fit-prior``
stored beside the model), at each temperature: S-Acc of ``--n`` samples (with its interval),
the class-layout entropy of the accepted samples against that of real test scenes, FD in the
judge's object-feature space, and the near-copy rate against the training scenes the density
was fitted on, beside the same rate for held-out real test scenes (see
:mod:`gnm.eval.diversity`). Prints JSON and a Markdown table; ``--out DIR`` writes
prior_samplers.json/.md.

    python benchmarks/prior_samplers.py runs/m4b/mnist4.safetensors [--n 1000] [--out DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gnm.data.registry import build_dataset, stack_images
from gnm.errors import GNMError
from gnm.eval.diversity import copy_threshold, layout_entropy, near_copy_rate
from gnm.eval.fd import frechet_distance_images
from gnm.eval.judge import object_features
from gnm.eval.judges import require_judge
from gnm.io import emit_report
from gnm.models.aggregate_prior import encode_training_latents, fit_gmm, load_prior
from gnm.sampling import sample_images
from gnm.train.checkpoint import load_model_and_config


def run(model_path: str, n: int, temperatures: list[float], n_copies: int, seed: int,
        gmm_ks: list[int]) -> dict:
    """Every row of the comparison (see the module docstring); ``gmm_ks``: mixtures of these
    component counts are fitted here too (same latents) and compared at temperature 1."""
    model, cfg = load_model_and_config(model_path)
    judge = require_judge(cfg.data.dataset, "prior_samplers")
    gmm = load_prior(model_path, "gmm")
    n_fit = int(gmm.info.get("n_scenes", 5000))
    fitted = stack_images(build_dataset(cfg.data, "train"), range(n_fit))
    real = stack_images(build_dataset(cfg.data, "test"), range(n))
    tau = copy_threshold(model, fitted[:n_copies])
    real_u8 = (real.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    data_layout = layout_entropy(judge(real_u8, cfg.data.dataset, progress=False)["verdicts"])
    real_copy = near_copy_rate(real, fitted, tau)
    samplers = [("prior", None, temperatures),
                (f"gmm (gnm fit-prior: K={gmm.info['k']}, {_rule(gmm.info)})", gmm,
                 temperatures)]
    if gmm_ks:
        z = encode_training_latents(model, cfg, n_fit, progress=False).numpy()
        for k in gmm_ks:
            fitted_k = fit_gmm(z, ks=(k,), seed=seed)
            samplers.append((f"gmm K={k} (held-out LL {fitted_k.info['held_out_ll'][str(k)]:.1f})",
                             fitted_k, [1.0]))
    rows = []
    for name, density, temps in samplers:
        for temp in temps:
            t0 = time.time()
            imgs = sample_images(model, n, seed=seed, progress=False, temperature=temp,
                                 prior=density)
            fake = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
            res = judge(imgs, cfg.data.dataset, progress=False)
            lay = layout_entropy(res["verdicts"])
            try:
                fd = frechet_distance_images(real, fake, object_features, progress=False)["fd"]
            except GNMError:  # too few objects found in the samples (an untrained model)
                fd = None
            rows.append({"sampler": name, "temperature": temp, "sacc": res["sacc"],
                         "ci95": res["ci95"], "layout_entropy": lay["entropy"],
                         "layouts": lay["layouts"], "fd": fd,
                         "near_copy": near_copy_rate(fake, fitted, tau),
                         "seconds": time.time() - t0})
    return {"benchmark": "prior_samplers", "model": model_path, "dataset": cfg.data.dataset,
            "n": n, "seed": seed, "judge_version": res["judge_version"],
            "gmm": {k: gmm.info.get(k) for k in ("k", "select", "held_out_ll", "cycle",
                                                 "n_scenes")},
            "data_layout_entropy": data_layout["entropy"], "data_layouts": data_layout["layouts"],
            "copy_tau_rmse": tau, "real_near_copy": real_copy, "rows": rows}


def _rule(info: dict) -> str:
    """How ``gnm fit-prior`` chose K (priors fitted before the cycle rule have no "select")."""
    return "cycle rule" if info.get("select") == "cycle" else "held-out LL"


def table(result: dict) -> str:
    """Markdown table of the rows, with the real scenes' reference row first."""
    lines = ["| sampler | T | S-Acc (95% CI) | layout entropy (nats) | layouts | FD | "
             "near copies |",
             "|---|---|---|---|---|---|---|",
             f"| real test scenes | - | - | {result['data_layout_entropy']:.3f} | "
             f"{result['data_layouts']} | - | {result['real_near_copy']:.3f} |"]
    for r in result["rows"]:
        lo, hi = r["ci95"]
        lines.append(f"| {r['sampler']} | {r['temperature']:g} | {r['sacc']:.3f} ({lo:.3f}-"
                     f"{hi:.3f}) | {r['layout_entropy']:.3f} | {r['layouts']} | "
                     f"{'-' if r['fd'] is None else format(r['fd'], '.1f')} | "
                     f"{r['near_copy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--temperatures", default="1.0")
    p.add_argument("--n-copies", type=int, default=500, help="fitted scenes reconstructed to "
                   "set the near-copy distance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gmm-k", default="", help="also fit mixtures of these K (comma list) and "
                   "compare them at temperature 1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    temps = [float(t) for t in args.temperatures.split(",")]
    ks = [int(k) for k in args.gmm_k.split(",") if k.strip()]
    result = run(args.model, args.n, temps, args.n_copies, args.seed, ks)
    emit_report(result, table(result), args.out, "prior_samplers",
                f"# Samplers of z_g for {args.model} (judge v{result['judge_version']})\n\n"
                f"Command: `python benchmarks/prior_samplers.py {args.model} --n {args.n} "
                f"--temperatures {args.temperatures}"
                + (f" --gmm-k {args.gmm_k}" if ks else "")
                + "`. `prior` is the model's own p(z_g) (the paper's sampler); `gmm` a "
                "full-covariance mixture fitted by `gnm fit-prior` to "
                f"the posterior means of {result['gmm']['n_scenes']} training scenes (K = "
                f"{result['gmm']['k']}, chosen by the {_rule(result['gmm'])}: docs/priors.md; the "
                "`K=` rows fix K instead): beyond the paper. Near "
                f"copies: samples within per-pixel RMSE {result['copy_tau_rmse']:.3f} (the "
                "median distance of the model's reconstructions from their scenes) of a "
                "fitted scene.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
