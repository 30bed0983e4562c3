"""``gnm eval``: every metric for one trained model, written as ``eval.json`` and ``eval.md``.

Metrics (keys of ``eval.json``): ``sacc`` (judge on prior samples), ``dsteps`` (discriminator
steps, real test scenes vs samples), ``ll`` (importance-sampled log-likelihood of test scenes),
``ap50`` / ``ap`` (box AP of inferred boxes on test scenes), ``probe`` (z_what → class MLP),
``fd`` (Fréchet distance in the judge classifier's object-feature space; not Inception FID).
A model that lacks what a metric needs (``sample``, ``decompose``, ``log_importance_weight``)
gets ``null`` for it and a note saying why.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gnm.errors import GNMError
from gnm.eval.cost import fmt_seconds, plan, plan_lines
from gnm.eval.judges import has_judge, require_judge
from gnm.eval.metrics import METRICS, QUICK
from gnm.io import atomic_write_bytes, atomic_write_json, check_writable
from gnm.models.base import supports, why_not

#: The paper's GNM numbers (Tables 1, 3, 4) per dataset, at 128 px (Arrow Room: Table 1).
PAPER = {
    "mnist4": {"sacc": 0.984, "dsteps": 3920, "ll": 10964, "ap50": 0.905, "ap": 0.487,
               "probe": 0.983},
    "mnist10": {"sacc": 0.824, "dsteps": 2760, "ll": 10450, "ap50": 0.905, "ap": 0.459,
                "probe": 0.984},
    "mnist4_10": {"sacc": 0.692, "dsteps": 5279, "ll": 10693},
    "arrow": {"sacc": 0.976, "dsteps": 11099, "ll": 33809},
}


def parse_metrics(text: str) -> list[str]:
    """``"sacc,ap"`` -> ``["sacc", "ap"]``; ``all`` means every metric, ``quick`` the fast
    default set :data:`QUICK` (``sacc,ap50,ap,probe``)."""
    sets = {"all": list(METRICS), "quick": list(QUICK)}  # METRICS: a dict, in order
    names = sets.get(text.strip()) or [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise GNMError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from "
                       f"{', '.join(METRICS)}, quick ({','.join(QUICK)}) or all.")
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
    import dataclasses

    from gnm.data.registry import build_dataset

    data = cfg.data if data_dir is None else dataclasses.replace(cfg.data, data_dir=data_dir)
    ds = build_dataset(data, "test", seed=seed)
    if hasattr(ds, "batch_items"):  # rendered datasets: many scenes per call
        items = [it for i in range(0, n, 64) for it in ds.batch_items(range(i, min(n, i + 64)))]
    else:
        items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def evaluate_file(model_path: str | Path, metrics: list[str], out: str | Path,
                  device: str = "cpu", strict: bool = False, **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate` for the model stored at ``model_path`` (run directory, checkpoint or
    .safetensors) with its stored config; ``eval.json`` names that path. With ``strict``
    (metrics named one by one on the command line), a metric the model cannot support is a
    GNMError instead of a note."""
    from gnm.models.base import require
    from gnm.train.checkpoint import load_model_and_config

    _check_n(kwargs.get("n", 1000))  # before loading anything
    check_writable(out)
    model, cfg = load_model_and_config(model_path, device=device)
    if strict:
        for m in metrics:
            require(model, METRICS[m].needs, f"gnm eval --metrics {m}")
    return evaluate(model, cfg, metrics, out, device=device, name=str(model_path), **kwargs)


def _check_n(n: int) -> None:
    if n < 20:
        raise GNMError(f"--n {n} is too small for confidence intervals; use at least 20.")


def runnable(model: Any, dataset: str, metrics: list[str]) -> tuple[list[str], list[str]]:
    """The ``metrics`` the model and dataset allow, and one note per other metric saying why
    it is skipped."""
    todo, notes = [], []
    for m in metrics:
        spec = METRICS[m]
        if not supports(model, spec.needs):
            notes.append(f"{m}: not measured: {why_not(model, spec.needs)}.")
        elif spec.judge and not has_judge(dataset):
            notes.append(f"{m}: not measured: dataset {dataset} has no S-Acc judge.")
        elif spec.datasets is not None and dataset not in spec.datasets:
            notes.append(f"{m}: not measured: it is defined for {', '.join(spec.datasets)} "
                         f"only, not {dataset}.")
        else:
            todo.append(m)
    return todo, notes


def evaluate(model: Any, cfg: Any, metrics: list[str], out: str | Path | None = None,
             n: int = 1000, seed: int = 0, ll_k: int = 100, ll_n: int | None = None,
             batch_size: int = 32, dsteps_cap: int = 5000, data_dir: str | None = None,
             device: str = "cpu", progress: bool = True, name: str | None = None
             ) -> dict[str, Any]:
    """Compute ``metrics`` (keys of :data:`METRICS`) for ``model`` (in memory, on ``device``)
    of a run with config ``cfg``; with ``out``, write ``out/eval.json`` and ``out/eval.md``;
    return the JSON object. ``n`` = samples and test scenes used (LL uses ``ll_n``, default
    ``min(n, 200)``, scenes with ``ll_k`` importance samples each). A metric the model or the
    dataset cannot support is ``null`` with a note saying why (:func:`runnable`).

    With ``progress``, prints (to stderr) each stage's estimated cost before starting (see
    :mod:`gnm.eval.cost`), then ``[i/N] stage: ...`` as each starts and its seconds when it
    ends. ``eval.json`` records the seconds per stage under ``"stage_seconds"``."""
    _check_n(n)
    if out is not None:
        check_writable(out)
    dataset = cfg.data.dataset
    result: dict[str, Any] = {"model": name or type(model).__name__,
                              "model_name": getattr(cfg.model, "name", type(model).__name__),
                              "dataset": dataset,
                              "image_size": cfg.data.size, "n": n, "seed": seed,
                              "notes": [], "details": {}}
    for m in metrics:
        result[m] = None
    todo, result["notes"] = runnable(model, dataset, metrics)
    ll_n = ll_n or min(n, 200)
    stages = plan(todo, n, cfg.data.size, ll_n, ll_k, dsteps_cap)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (
        lambda text: None)
    if stages:
        for line in plan_lines(stages):
            say(line)
    ctx = _Context(model, cfg, todo, result, n, seed, ll_k, ll_n, batch_size, dsteps_cap,
                   data_dir, device, progress)
    start = time.time()
    result["stage_seconds"] = {}
    for i, stage in enumerate(stages, 1):
        say(f"[{i}/{len(stages)}] {stage.label}: {stage.work} ...")
        t0 = time.time()
        _STAGES[stage.key](ctx)
        took = time.time() - t0
        result["stage_seconds"][stage.key] = took
        say(f"[{i}/{len(stages)}] {stage.label}: done in {fmt_seconds(took)}")
    result["seconds"] = time.time() - start
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "eval.json", result)
        atomic_write_bytes(out / "eval.md", markdown(result).encode())
    return result


@dataclass
class _Context:
    """What the stages share: the model, settings, and the tensors earlier stages made."""

    model: Any
    cfg: Any
    todo: list[str]
    result: dict[str, Any]
    n: int
    seed: int
    ll_k: int
    ll_n: int
    batch_size: int
    dsteps_cap: int
    data_dir: str | None
    device: str
    progress: bool
    samples: Any = None  # uint8 [n, H, W, C]
    fake: torch.Tensor | None = None  # float [n, C, H, W] in [0, 1]
    real: dict[str, torch.Tensor] | None = None
    decomposed: dict[str, torch.Tensor] | None = None


def _stage_samples(c: _Context) -> None:
    from gnm.sampling import sample_images

    c.samples = sample_images(c.model, c.n, seed=c.seed, batch_size=c.batch_size,
                              progress=c.progress)
    c.fake = torch.from_numpy(c.samples).permute(0, 3, 1, 2).float() / 255


def _stage_scenes(c: _Context) -> None:
    c.real = real_test_scenes(c.cfg, c.n, c.data_dir, c.seed)
    d = c.cfg.data
    if c.real["image"].shape[1:] != (d.channels, d.size, d.size):
        raise GNMError(f"the model expects {d.channels}x{d.size}px images but its dataset "
                       f"gives {tuple(c.real['image'].shape[1:])}.")


def _stage_sacc(c: _Context) -> None:
    judge = require_judge(c.cfg.data.dataset, "sacc")
    r = judge(c.samples, c.cfg.data.dataset, progress=c.progress)
    c.result["sacc"] = r["sacc"]
    c.result["details"]["sacc"] = {k: r[k] for k in ("judge_version", "ci95", "sacc_strict",
                                                      "n", "reasons")}


def _stage_dsteps(c: _Context) -> None:
    from gnm.eval.discriminability import d_steps

    r = d_steps(c.real["image"], c.fake, cap=c.dsteps_cap, progress=c.progress,
                n_eval=min(250, c.n // 4))  # 250 held out of each at n >= 1000
    c.result["dsteps"] = r["mean"]
    c.result["details"]["dsteps"] = {k: r[k] for k in ("std", "steps", "capped", "protocol")}


def _stage_fd(c: _Context) -> None:
    from gnm.eval.fd import frechet_distance_images
    from gnm.eval.judge import object_features

    try:
        r = frechet_distance_images(c.real["image"], c.fake, object_features,
                                    progress=c.progress)
        c.result["fd"] = r["fd"]
        c.result["details"]["fd"] = {k: r[k] for k in ("n_real", "n_fake", "dim")}
    except GNMError as exc:  # e.g. too few objects found in the samples
        c.result["notes"].append(f"fd: not measured: {exc}")


def _stage_ll(c: _Context) -> None:
    from gnm.eval.likelihood import importance_log_likelihood

    def log_w(xb: torch.Tensor, k: int) -> torch.Tensor:
        return c.model.log_importance_weight(xb.repeat_interleave(k, 0)).view(len(xb), k)

    r = importance_log_likelihood(log_w, c.real["image"][:c.ll_n].to(c.device), k=c.ll_k,
                                  batch_size=max(1, c.batch_size // 8), progress=c.progress,
                                  k_chunk=min(c.ll_k, 25), seed=c.seed)
    c.result["ll"] = r["mean"]
    c.result["details"]["ll"] = {k: r[k] for k in ("std", "sem", "ci95", "n", "k")}


def _stage_decompose(c: _Context) -> None:
    c.decomposed = _decompose_all(c.model, c.real["image"].to(c.device), c.batch_size)


def _stage_ap(c: _Context) -> None:
    from gnm.eval.detection import box_ap_from_tensors, box_fit

    d, real = c.decomposed, c.real
    r = box_ap_from_tensors(d["boxes"], d["pres_prob"], real["boxes"], real["n_objects"])
    for key in ("ap50", "ap"):
        if key in c.todo:
            c.result[key] = r[key]
    c.result["details"]["ap"] = {k: r[k] for k in ("n_images", "n_gt", "n_pred")}
    c.result["details"]["ap"]["fit"] = box_fit(d["boxes"], d["pres_prob"], real["boxes"],
                                               real["n_objects"])


def _stage_probe(c: _Context) -> None:
    d = c.decomposed
    if "z_what" not in d:
        c.result["notes"].append("probe: decompose() gives no z_what.")
        return
    from gnm.eval.probe import zwhat_probe

    try:
        r = zwhat_probe(d["z_what"], d["boxes"], d["presence"], c.real["boxes"],
                        c.real["classes"], seed=c.seed, progress=c.progress)
        c.result["probe"] = r["accuracy"]
        c.result["details"]["probe"] = {k: r[k] for k in ("ci95", "n_train", "n_test")}
    except GNMError as exc:  # e.g. no present objects to probe
        c.result["notes"].append(f"probe: not measured: {exc}")


_STAGES = {"samples": _stage_samples, "scenes": _stage_scenes, "sacc": _stage_sacc,
           "dsteps": _stage_dsteps, "fd": _stage_fd, "ll": _stage_ll,
           "decompose": _stage_decompose, "ap": _stage_ap, "probe": _stage_probe}


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
