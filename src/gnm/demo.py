"""``gnm demo``: a pretrained GNM at work, written to one HTML page with its pictures.

:func:`run_demo` loads the bundled MNIST-4 model (``gnm/assets/models/mnist4.safetensors``, or
any run directory / checkpoint / weights file), samples scenes from its prior and has the
project's judge score their structure (S-Acc with a 95% interval and the failure reasons),
decomposes test scenes into objects, draws the paper's pictures (:mod:`gnm.viz.figures`) and
dataset previews, and writes ``OUT/index.html`` plus ``OUT/demo.json`` (the same numbers for
machines). ``gnm demo --train`` (:mod:`gnm.demo_train`) trains a small model first.

Every stage prints one progress line with its wall-clock seconds; the page reports them too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnm.data.mnist import load_mnist, mnist_on_disk
from gnm.data.registry import build_dataset
from gnm.data.scenes import DATASETS, SceneGenerator
from gnm.errors import GNMError
from gnm.eval.judges import require_judge
from gnm.io import atomic_write_json, check_writable
from gnm.models.base import require
from gnm.sampling import sample_images
from gnm.train.checkpoint import load_config, load_model, training_facts
from gnm.viz import report
from gnm.viz.figures import all_figures, choose_traversals, draw_boxes
from gnm.viz.grid import make_grid, save_png

DEFAULT_MODEL = "mnist4.safetensors"
#: Why the bundled model's recorded training wall-clock is longer than the recipe's.
BUNDLED_TRAINING_NOTE = (
    "this file is run runs/l56-s0 (training seed 0), which shared the 2 cores with other runs "
    "(62 min to step 22k as one of three, then 1 thread as one of two); the same recipe "
    "(`gnm train --preset mnist4-cpu`) from scratch alone on both cores of a 2-core AVX-512 "
    "CPU took 96 min (seed 2, S-Acc 0.920; docs/results/HISTORY.md)")
#: The same for every bundled model, by dataset.
BUNDLED_NOTES = {"mnist4": BUNDLED_TRAINING_NOTE}
MIN_N = 20  # the judge needs at least this many samples for an interval
TEST_SCENES = 64  # test scenes decomposed to count inferred objects
JUDGED_SHOWN = 48  # judged samples shown with their verdict

#: Each dataset's rule in a few words (for the judged-samples caption).
RULES = {
    "mnist4": "4 digits, one per quadrant, d, d+1, d+2, d+3 clockwise, mirrored positions",
    "mnist10": "10 digits, the class sets {0,1}, {2,3,4}, {8,9}, {5,6,7} one per quadrant, "
               "{0,1} diagonal to {8,9}, 0/8 and 1/9 at the same place in their quadrants",
    "mnist4_10": "either the MNIST-4 or the MNIST-10 rule",
}
CAPTIONS = {
    "prior_samples": "64 scenes sampled from the prior p(z_g) p(z_s|z_g) (the paper's Fig. 2): "
                     "no input image, the model invents the whole scene.",
    "decomposition": "Test scenes decomposed (Fig. 3): the input with a green box per object "
                     "the model infers, its reconstruction, then each object's layer (largest "
                     "presence first).",
    "reconstructions": "Test scenes (odd rows) and their reconstructions (even rows).",
    "object_traversal_where": "One object's horizontal position (z_where shift x) varied from "
                              "left to right while the rest of the scene stays (Fig. 5, left).",
    "object_traversal_what": "One object's appearance varied along z_what dimension {dim} (of "
                             "the object's z_what, the dimension whose posterior means spread "
                             "most across the test scenes' objects: the others are mostly "
                             "unused), from {lo:.1f} to {hi:.1f}; the other objects stay.",
    "global_traversal": "z_g dimension {dim} of 4 test scenes' z_g varied from {lo:.1f} to "
                        "{hi:.1f} (Fig. 5, right; the dimension of the global latent whose "
                        "posterior means spread most across test scenes): one latent moves "
                        "several objects together.",
    "resample_posterior": "z_g inferred from the test scene on the left and kept fixed; each "
                          "further picture draws a new structure z_s ~ p(z_s|z_g) (Fig. 10).",
    "resample_prior": "z_g drawn from the prior and kept fixed per row; z_s resampled for each "
                      "picture (Fig. 11).",
}


def bundled_model_path(dataset: str = "mnist4") -> Path:
    """Where the bundled pretrained model of ``dataset`` lives inside the installed package
    (it may be absent: :func:`bundled_datasets` lists those present)."""
    import gnm

    return Path(gnm.__file__).resolve().parent / "assets" / "models" / f"{dataset}.safetensors"


def default_model_path() -> Path:
    """Where the bundled pretrained MNIST-4 model lives inside the installed package."""
    return bundled_model_path(DEFAULT_MODEL.removesuffix(".safetensors"))


def bundled_datasets() -> list[str]:
    """The datasets with a bundled model in this install, e.g. ``["mnist4"]``
    (densities fitted beside them, ``NAME.gmm.safetensors``, are not models)."""
    folder = default_model_path().parent
    return sorted(p.stem for p in folder.glob("*.safetensors") if "." not in p.stem)


def resolve_model(model: str | Path | None, dataset: str | None = None) -> Path:
    """The model to show: ``model`` (run directory, checkpoint or weights), else the bundled
    model of ``dataset`` (default MNIST-4); raises :class:`GNMError` naming the missing file
    and how to get a model."""
    if model is not None and dataset is not None:
        raise GNMError("--model and --dataset exclude each other: --dataset picks a bundled "
                       "model, --model shows your own.")
    if dataset not in (None, "mnist4"):
        path = bundled_model_path(dataset)
        if path.exists():
            return path
        have = ", ".join(bundled_datasets()) or "none"
        raise GNMError(f"there is no bundled model for --dataset {dataset!r} (bundled: {have}); "
                       "pass a model of your own with --model.")
    path = Path(model) if model is not None else default_model_path()
    if path.exists():
        return path
    if model is None:
        raise GNMError(f"the pretrained model {path} is not in this install; train one in a few "
                       "minutes with `gnm demo --train` and pass the weights it writes "
                       "(--model out/demo-train/model/mnist4.safetensors), or pass any run "
                       "directory, checkpoint or .safetensors file with --model.")
    raise GNMError(f"--model {path} does not exist; pass a run directory, a checkpoint (.pt) or "
                   "a .safetensors file (e.g. from `gnm demo --train`).")


class Stages:
    """Prints one line ``[i/total] what ... 1.2 s`` per stage and keeps each stage's seconds.

    A stage that prints on its own (``talks=True``, e.g. training with its progress bar) gets
    its start line and a separate end line instead."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total, self.quiet, self.done = total, quiet, 0
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, what: str, talks: bool = False) -> Iterator[None]:
        self.done += 1
        head = f"[{self.done}/{self.total}] {what} ..."
        if not self.quiet:
            print(head, end="\n" if talks else "", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[what] = time.perf_counter() - t0
            if not self.quiet:
                print(f"{head if talks else ''} {self.seconds[what]:.1f} s", flush=True)


def describe_model(path: Path, model: torch.nn.Module, cfg: Any) -> dict[str, Any]:
    """What the report says about the model: file, name, size, data and training."""
    facts = training_facts(path)
    return {"file": str(path), "model": cfg.model.name, "dataset": cfg.data.dataset,
            "image_px": cfg.data.size, "parameters": sum(p.numel() for p in model.parameters()),
            "training_steps": facts["steps"], "training_seconds": facts["seconds"],
            "optimizer": cfg.train.optimizer, "lr": cfg.train.lr,
            "batch_size": cfg.train.batch_size,
            "training_note": next((note for name, note in BUNDLED_NOTES.items()
                                   if _same_file(path, bundled_model_path(name))), None)}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


def judged_grid(images: np.ndarray, verdicts: list[dict[str, Any]], path: Path,
                k: int = JUDGED_SHOWN) -> None:
    """The first ``k`` samples (uint8 ``[N, H, W, C]``) framed green (judge accepts) or red."""
    imgs = images[:k]
    rgb = np.repeat(imgs, 3, axis=-1) if imgs.shape[-1] == 1 else imgs
    n, h, w, _ = rgb.shape
    ok = np.array([[v["ok"]] for v in verdicts[:n]], bool)
    for inset in (0, 1):  # a 2-px frame
        frame = np.tile(np.array([[inset, inset, w - inset, h - inset]], float), (n, 1, 1))
        rgb = draw_boxes(draw_boxes(rgb, frame, ok), frame, ~ok, colour=(255, 40, 40))
    save_png(make_grid(rgb, nrow=min(8, n)), path)


@torch.no_grad()
def model_sections(model: torch.nn.Module, cfg: Any, out: Path, n: int, seed: int, mnist: Any,
                   stages: Stages) -> tuple[list[str], dict[str, Any]]:
    """Sample, judge, decompose and draw (3 stages); the report's sections and the numbers."""
    dataset = cfg.data.dataset
    for capability in ("sample", "decompose"):
        require(model, capability, "gnm demo")
    with stages(f"sampling {n} scenes from the prior"):
        images = sample_images(model, n, seed=seed, progress=False)  # uint8 [n, H, W, C]
    with stages(f"judging the {n} samples (S-Acc)"):
        res = require_judge(dataset, "gnm demo")(images, dataset, progress=False)
        judged_grid(images, res["verdicts"], out / "judged_samples.png")
    with stages("decomposing test scenes and drawing the pictures"):
        ds = build_dataset(cfg.data, "test", seed=seed, mnist=mnist)
        items = [ds[i] for i in range(TEST_SCENES)]
        x = torch.stack([it["image"] for it in items])
        inferred = model.decompose(x)["presence"].sum(1).float().mean().item()
        trav = choose_traversals(model, x)
        skipped: dict[str, str] = {}
        all_figures(model, x[:16], out, seed=seed, traversals=trav, skipped=skipped)
    metrics = {
        "dataset": dataset, "judge_version": res["judge_version"], "sacc": res["sacc"],
        "ci95": res["ci95"], "n": res["n"],
        "sacc_strict": res["sacc_strict"], "reasons": res["reasons"],
        "objects_per_sample": float(np.mean([v["n_objects"] for v in res["verdicts"]])),
        "objects_inferred_per_test_scene": inferred,
        "objects_true_per_test_scene": float(np.mean([int(it["n_objects"]) for it in items])),
        "traversals": {key: {"dim": dim, "lo": float(v[0]), "hi": float(v[-1])} for key, dim, v
                       in (("object_traversal_what", trav.what_dim, trav.what_values),
                           ("global_traversal", trav.global_dim, trav.global_values))},
        "skipped_figures": skipped,
    }
    return _sections(out, metrics), metrics


def _sections(out: Path, m: dict[str, Any]) -> list[str]:
    fails = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["reasons"].items()
                      if v and k != "ok") or "none"
    lo, hi = m["ci95"]
    rows = [
        ("S-Acc (share of samples that follow the scene rule)", f"{m['sacc']:.3f}"),
        ("95% confidence interval (Wilson)", f"{lo:.3f} - {hi:.3f}"),
        ("samples judged (n)", m["n"]),
        ("strict S-Acc (every label is the judge's top digit)", f"{m['sacc_strict']:.3f}"),
        ("why the others fail (count)", fails),
        ("objects per prior sample (found by the judge)", f"{m['objects_per_sample']:.2f}"),
        (f"objects inferred per test scene (z_pres, {TEST_SCENES} scenes)",
         f"{m['objects_inferred_per_test_scene']:.2f}"),
        ("objects per test scene (ground truth)", f"{m['objects_true_per_test_scene']:.2f}"),
    ]
    def fig(folder: Path, src: str, caption: str) -> str:
        name = src.removesuffix(".png")
        if name in m.get("skipped_figures", {}):
            return f"<p>{report.esc(name)} not drawn: {report.esc(m['skipped_figures'][name])}.</p>"
        return report.figure(folder, src, caption)

    return [
        report.section("Scene-structure accuracy", report.table(rows, ("metric", "value")),
                       fig(out, "judged_samples.png", f"The first {JUDGED_SHOWN} judged prior "
                           "samples: green frame = the judge accepts the scene "
                           f"({RULES.get(m['dataset'], 'the rule')}), red = rejected."),
                       intro=f"The project's automatic judge checks each of {m['n']} prior "
                       f"samples against the {m['dataset']} rule."),
        report.section("Samples from the prior",
                       fig(out, "prior_samples.png", CAPTIONS["prior_samples"])),
        report.section("Decomposition into objects",
                       *(fig(out, f"{k}.png", CAPTIONS[k])
                         for k in ("decomposition", "reconstructions"))),
        report.section("Traversals", *(fig(out, f"{k}.png", CAPTIONS[k].format(
            **m["traversals"].get(k, {}))) for k in (
            "object_traversal_where", "object_traversal_what", "global_traversal"))),
        report.section("Resampling the structure z_s with z_g fixed",
                       *(fig(out, f"{k}.png", CAPTIONS[k])
                         for k in ("resample_posterior", "resample_prior"))),
    ]


def write_previews(out: Path, mnist: Any, size: int = 128, n: int = 16,
                   seed: int = 0) -> str:
    """``OUT/<dataset>.png`` (``n`` test scenes of each dataset); returns the HTML section."""
    figs = []
    for name in DATASETS:
        gen = SceneGenerator(name, "test", size, seed, mnist=mnist)
        images, annotations = gen.batch(range(n))
        save_png(make_grid(images, nrow=int(np.ceil(np.sqrt(n)))), out / f"{name}.png")
        rules = ", ".join(sorted({a["rule"] for a in annotations}))
        figs.append(report.figure(out, f"{name}.png", f"{name}: {n} test scenes at {size} px "
                                  f"(rules: {rules}).", scale=1.0))
    return report.section("The datasets", *figs, intro="Real scenes of each dataset the "
                          "project generates (what the models learn from).")


def model_table(info: dict[str, Any]) -> str:
    """The model section: file, architecture size and how it was trained."""
    steps, secs = info["training_steps"], info["training_seconds"]
    rows = [("file", info["file"]), ("model", info["model"]),
            ("parameters", f"{info['parameters']:,}"),
            ("data", f"{info['dataset']}, {info['image_px']} px"),
            ("training steps", f"{steps:,}" if steps is not None else "unknown"),
            ("training wall-clock", (f"{secs / 60:.1f} min" if secs else "unknown")
             + (f" ({info['training_note']})" if info.get("training_note") else "")),
            ("optimiser", f"{info['optimizer']}, lr {info['lr']:g}, batch {info['batch_size']}")]
    return report.section("Model", report.table(rows))


def load_mnist_stage(stages: Stages, data_dir: str | None) -> Any:
    """Load MNIST as one stage; when it must be fetched first (which prints its own lines), the
    stage line ends before the fetch talks, so the two do not run into one line."""
    fetch = not mnist_on_disk(data_dir)
    with stages("fetching and loading MNIST digits" if fetch else "loading MNIST digits",
                talks=fetch):
        return load_mnist(data_dir)


def timing_table(stages: Stages, total_s: float) -> str:
    """The demo's own wall-clock, per stage and in total."""
    rows = [(what, f"{s:.1f} s") for what, s in stages.seconds.items()]
    rows.append(("total", f"{total_s:.1f} s on {torch.get_num_threads()} torch thread(s), "
                          "after Python and torch started"))
    return report.section("Wall-clock of this demo", report.table(rows, ("stage", "time")))


def run_demo(out: str | Path = "out/demo", model: str | Path | None = None, n: int = 200,
             seed: int = 0, data_dir: str | None = None, size: int = 128,
             quiet: bool = False, dataset: str | None = None) -> Path:
    """Write the demo of a trained model (default: the bundled model of ``dataset``, MNIST-4
    if None) to ``out``; return ``out/index.html``. ``n`` prior samples are judged; ``size``
    is the previews' side (px)."""
    t0 = time.perf_counter()
    if n < MIN_N:
        raise GNMError(f"--n {n} is too few samples for an S-Acc interval; use at least {MIN_N}.")
    path, out = resolve_model(model, dataset), check_writable(out)
    stages = Stages(7, quiet)
    with stages(f"loading the model {path.name}"):
        cfg = load_config(path)
        net = load_model(path)
        info = describe_model(path, net, cfg)
    mnist = load_mnist_stage(stages, data_dir)
    blocks, metrics = model_sections(net, cfg, out, n, seed, mnist, stages)
    with stages("dataset previews"):
        previews = write_previews(out, mnist, size, seed=seed)
    total = time.perf_counter() - t0
    with stages("writing the report"):
        page = write_demo_page(out, info, metrics, [*blocks, previews], stages, total)
    if not quiet:
        print(f"demo done in {time.perf_counter() - t0:.1f} s "
              f"({torch.get_num_threads()} torch thread(s)): {page}")
    return page


def write_demo_page(out: Path, info: dict[str, Any], metrics: dict[str, Any],
                    blocks: list[str], stages: Stages, total_s: float,
                    title: str = "gnm demo: a pretrained GNM") -> Path:
    """``out/index.html`` (model, metrics, pictures, timings) and ``out/demo.json``."""
    atomic_write_json(out / "demo.json", {"model": info, "metrics": metrics,
                                          "stage_seconds": stages.seconds,
                                          "total_seconds": total_s,
                                          "torch_threads": torch.get_num_threads()})
    lo, hi = metrics["ci95"]
    subtitle = (f"{info['dataset']} scenes; S-Acc {metrics['sacc']:.3f} (95% CI {lo:.3f}-"
                f"{hi:.3f}, n={metrics['n']}); made in {total_s:.1f} s. Numbers also in "
                "demo.json.")
    return report.write_page(out / "index.html", title,
                             [model_table(info), *blocks, timing_table(stages, total_s)],
                             subtitle)
