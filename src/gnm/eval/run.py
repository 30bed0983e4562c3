"""``gnm eval``: every metric for one trained model, written as ``eval.json`` and ``eval.md``.

Metrics (keys of ``eval.json``): ``sacc`` (judge on prior samples), ``dsteps`` (discriminator
steps, real test scenes vs samples), ``ll`` (importance-sampled log-likelihood of test scenes),
``ap50`` / ``ap`` (box AP of inferred boxes on test scenes), ``probe`` (z_what → class MLP),
``fd`` (Fréchet distance in the judge classifier's object-feature space; not Inception FID).
A model that lacks what a metric needs (``sample``, ``decompose``, ``log_importance_weight``)
gets ``null`` for it and a note saying why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from gnm.errors import GNMError
from gnm.io import atomic_write_bytes, atomic_write_json

METRICS = ("sacc", "dsteps", "ll", "ap50", "ap", "probe", "fd")
#: The paper's GNM numbers (Tables 1, 3, 4) per dataset, at 128 px.
PAPER = {
    "mnist4": {"sacc": 0.984, "dsteps": 3920, "ll": 10964, "ap50": 0.905, "ap": 0.487,
               "probe": 0.983},
    "mnist10": {"sacc": 0.824, "dsteps": 2760, "ll": 10450, "ap50": 0.905, "ap": 0.459,
                "probe": 0.984},
    "mnist4_10": {"sacc": 0.692, "dsteps": 5279, "ll": 10693},
}
_NEEDS = {"sacc": "sample", "dsteps": "sample", "fd": "sample", "ll": "log_importance_weight",
          "ap50": "decompose", "ap": "decompose", "probe": "decompose"}
_JUDGED = ("mnist4", "mnist10", "mnist4_10")


def parse_metrics(text: str) -> list[str]:
    """``"sacc,ap"`` -> ``["sacc", "ap"]``; ``all`` means every metric."""
    names = list(METRICS) if text.strip() == "all" else [m.strip() for m in text.split(",") if m]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise GNMError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from "
                       f"{', '.join(METRICS)} or all.")
    return names


@torch.no_grad()
def _decompose_all(model, x: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    parts = [model.decompose(x[i:i + batch]) for i in range(0, len(x), batch)]
    keys = ("boxes", "pres_prob", "presence", "z_what")
    return {k: torch.cat([p[k] for p in parts]) for k in keys if k in parts[0]}


def real_test_scenes(cfg, n: int, data_dir: str | None = None, seed: int = 0
                     ) -> dict[str, torch.Tensor]:
    """The first ``n`` test scenes of ``cfg``'s dataset at its size, batched: ``image``
    ``[n, C, S, S]`` floats in [0, 1] plus every ground-truth tensor of the scenes."""
    from gnm.data.scenes import SceneDataset

    ds = SceneDataset(cfg.data.dataset, "test", cfg.data.size, seed=seed, data_dir=data_dir)
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def evaluate(model_path: str | Path, metrics: list[str], out: str | Path, n: int = 1000,
             seed: int = 0, ll_k: int = 100, ll_n: int | None = None, batch_size: int = 32,
             dsteps_cap: int = 5000, data_dir: str | None = None, device: str = "cpu",
             progress: bool = True) -> dict[str, Any]:
    """Compute ``metrics`` for the model at ``model_path``; write ``out/eval.json`` and
    ``out/eval.md``; return the JSON object. ``n`` = samples and test scenes used (LL uses
    ``ll_n``, default ``min(n, 200)``, scenes with ``ll_k`` importance samples each)."""
    from gnm.sampling import sample_images
    from gnm.train.checkpoint import load_config, load_model

    if n < 20:
        raise GNMError(f"--n {n} is too small for confidence intervals; use at least 20.")
    cfg = load_config(model_path)
    model = load_model(model_path, device=device)
    dataset = cfg.data.dataset
    result: dict[str, Any] = {"model": str(model_path), "dataset": dataset,
                              "image_size": cfg.data.size, "n": n, "seed": seed,
                              "notes": [], "details": {}}
    for m in metrics:
        result[m] = None
    todo = []
    for m in metrics:
        if not hasattr(model, _NEEDS[m]):
            result["notes"].append(f"{m}: model {type(model).__name__} has no "
                                   f"{_NEEDS[m]}(), so it is not measured.")
        elif m == "sacc" and dataset not in _JUDGED:
            result["notes"].append(f"sacc: no judge exists for dataset {dataset}.")
        else:
            todo.append(m)
    start = time.time()
    samples = real = None
    if {"sacc", "dsteps", "fd"} & set(todo):
        samples = sample_images(model, n, seed=seed, batch_size=batch_size, progress=progress)
    if {"dsteps", "fd", "ll", "ap50", "ap", "probe"} & set(todo):
        real = real_test_scenes(cfg, n, data_dir, seed)
        if real["image"].shape[1:] != (cfg.model.channels, cfg.model.img_size,
                                       cfg.model.img_size):
            raise GNMError(f"the model expects {cfg.model.channels}x{cfg.model.img_size}px "
                           f"images but its dataset gives {tuple(real['image'].shape[1:])}.")
    fake = None if samples is None else torch.from_numpy(samples).permute(0, 3, 1, 2).float() / 255
    if "sacc" in todo:
        from gnm.eval.judge import judge_images

        r = judge_images(samples, dataset, progress=progress)
        result["sacc"] = r["sacc"]
        result["details"]["sacc"] = {k: r[k] for k in ("judge_version", "ci95", "sacc_strict",
                                                        "n", "reasons")}
    if "dsteps" in todo:
        from gnm.eval.discriminability import d_steps

        r = d_steps(real["image"], fake, cap=dsteps_cap, progress=progress,
                    n_eval=min(250, n // 4))  # 250 held out of each at n >= 1000
        result["dsteps"] = r["mean"]
        result["details"]["dsteps"] = {k: r[k] for k in ("std", "steps", "capped", "protocol")}
    if "fd" in todo:
        from gnm.eval.fd import frechet_distance_images
        from gnm.eval.judge import object_features

        try:
            r = frechet_distance_images(real["image"], fake, object_features, progress=progress)
            result["fd"] = r["fd"]
            result["details"]["fd"] = {k: r[k] for k in ("n_real", "n_fake", "dim")}
        except GNMError as exc:  # e.g. too few objects found in the samples
            result["notes"].append(f"fd: not measured: {exc}")
    if "ll" in todo:
        from gnm.eval.likelihood import importance_log_likelihood

        def log_w(xb: torch.Tensor, k: int) -> torch.Tensor:
            return model.log_importance_weight(xb.repeat_interleave(k, 0)).view(len(xb), k)

        ll_n = ll_n or min(n, 200)
        r = importance_log_likelihood(log_w, real["image"][:ll_n].to(device), k=ll_k,
                                      batch_size=max(1, batch_size // 8), progress=progress,
                                      k_chunk=min(ll_k, 25), seed=seed)
        result["ll"] = r["mean"]
        result["details"]["ll"] = {k: r[k] for k in ("std", "sem", "ci95", "n", "k")}
    if {"ap50", "ap", "probe"} & set(todo):
        from gnm.eval.detection import box_ap_from_tensors, box_fit

        d = _decompose_all(model, real["image"].to(device), batch_size)
        r = box_ap_from_tensors(d["boxes"], d["pres_prob"], real["boxes"], real["n_objects"])
        for key in ("ap50", "ap"):
            if key in todo:
                result[key] = r[key]
        result["details"]["ap"] = {k: r[k] for k in ("n_images", "n_gt", "n_pred")}
        result["details"]["ap"]["fit"] = box_fit(d["boxes"], d["pres_prob"], real["boxes"],
                                                 real["n_objects"])
        if "probe" in todo:
            if "z_what" not in d:
                result["notes"].append("probe: decompose() gives no z_what.")
            else:
                from gnm.eval.probe import zwhat_probe

                try:
                    r = zwhat_probe(d["z_what"], d["boxes"], d["presence"], real["boxes"],
                                    real["classes"], seed=seed, progress=progress)
                    result["probe"] = r["accuracy"]
                    result["details"]["probe"] = {k: r[k] for k in ("ci95", "n_train",
                                                                    "n_test")}
                except GNMError as exc:  # e.g. no present objects to probe
                    result["notes"].append(f"probe: not measured: {exc}")
    result["seconds"] = time.time() - start
    out = Path(out)
    atomic_write_json(out / "eval.json", result)
    atomic_write_bytes(out / "eval.md", markdown(result).encode())
    return result


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and abs(v) < 10:
        return f"{v:.3f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


_TABLES = (  # (title, [(key, column header)]) laid out like the paper's tables
    ("Tables 1 and 3: generation", [("sacc", "S-Acc"), ("dsteps", "D-Steps"), ("ll", "LL")]),
    ("Table 4: representation", [("ap50", "AP@0.5"), ("ap", "AP@[.5:.95]"),
                                 ("probe", "classification accuracy")]),
    ("Fréchet distance in the judge classifier's object-feature space (not Inception FID)",
     [("fd", "FD")]),
)


def _detail(result: dict[str, Any], m: str) -> str:
    d = result["details"].get("ap" if m in ("ap50", "ap") else m, {})
    if not d:
        return ""
    if m == "sacc":
        lo, hi = d["ci95"]
        return f"S-Acc: 95% CI {lo:.3f}-{hi:.3f}, strict (top-1 labels) {d['sacc_strict']:.3f}"
    if m == "dsteps":
        return f"D-Steps: ± {d['std']:.0f} (std over seeds), capped per seed {d['capped']}"
    if m == "ll":
        return f"LL: nats/image, ± {d['sem']:.1f} (sem) over {d['n']} scenes, K = {d['k']}"
    if m == "probe":
        lo, hi = d["ci95"]
        return f"classification accuracy: 95% CI {lo:.3f}-{hi:.3f}"
    if (m == "ap50" or (m == "ap" and "ap50" not in result)) and "fit" in d:
        f = d["fit"]
        ratios = ("" if f["median_h_ratio"] is None else
                  f"; predicted/true height {f['median_h_ratio']:.2f}, width "
                  f"{f['median_w_ratio']:.2f} (medians)")
        return (f"boxes (presence >= 0.5, each true box paired with its best-overlapping one): "
                f"median IoU {f['median_iou']:.2f}, {f['frac_iou50']:.1%} of true boxes at IoU "
                f">= 0.5{ratios}; {f['pred_per_image']:.2f} predicted objects per scene")
    return ""


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables of an ``eval.json`` object laid out like the paper's Tables 1/3 and 4,
    with the paper's GNM row under ours."""
    paper = PAPER.get(result["dataset"], {})
    lines = [f"# Evaluation of {result['model']}", "",
             f"Dataset {result['dataset']} at {result['image_size']} px (the paper: 128 px; LL "
             f"depends on the pixel count), n = {result['n']}."]
    details = []
    for title, cols in _TABLES:
        cols = [(k, h) for k, h in cols if k in result]
        if not cols:
            continue
        lines += ["", f"**{title}**", "", "| model | " + " | ".join(h for _, h in cols) + " |",
                  "|---" * (len(cols) + 1) + "|",
                  "| ours | " + " | ".join(_fmt(result[k]) for k, _ in cols) + " |"]
        if any(k in paper for k, _ in cols):
            lines.append("| GNM (paper) | " + " | ".join(_fmt(paper.get(k)) for k, _ in cols)
                         + " |")
        details += [t for t in (_detail(result, k) for k, _ in cols) if t]
    if details:
        lines += ["", "Details:"] + [f"- {t}" for t in details]
    if result["notes"]:
        lines += ["", "Notes:"] + [f"- {t}" for t in result["notes"]]
    return "\n".join(lines) + "\n"
