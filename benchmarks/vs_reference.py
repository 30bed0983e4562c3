"""gnm against the reference GNM (JindongJiang/GNM) on the same CPU, side by side.

Times a user's own checkout of the reference implementation (``--reference DIR``: imported
from DIR, never copied into this repository; its unused imports of torchvision, tensorboard
and cv2 are stubbed, yacs comes from DIR or pip) against gnm at the paper's MNIST-4
configuration (128 px, batch 32, schedules at step 10,000, uniform random images), in
alternating rounds of four fresh processes each:

``reference``        the reference as shipped (glibc's default allocator)
``reference-tuned``  the reference with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``
                     in its environment: what ``gnm.perf.reuse_freed_memory`` does for gnm
``gnm-fp32``         gnm (preset ``mnist4``), fp32
``gnm-bf16``         gnm under bf16 autocast

Each process reports the median seconds of ``--steps`` train steps (forward, backward,
grad-norm clip, RMSprop step) and of as many prior-sampling calls of ``--batch`` scenes, after
``--warmup`` untimed ones, and its peak RSS. Figures are medians over ``--rounds`` rounds;
ratios compare gnm's faster dtype with each reference variant. Absolute images/s move with the
host's load: only the ratios of one run mean anything. Prints JSON and a Markdown table;
``--out DIR`` writes vs_reference.json/.md.

    python benchmarks/vs_reference.py --reference ~/src/GNM [--rounds 2] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

VARIANTS = ("reference", "reference-tuned", "gnm-fp32", "gnm-bf16")
TUNED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "2147483647"}
STEP = 10_000  # the training step whose schedules (τ, ρ, β) the timed steps use
_HERE = Path(__file__).resolve().parent


def _timed(fn, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


# --------------------------------------------------------------------------- the two workers
def _stub_reference_imports() -> None:
    """Empty stand-ins for the reference's imports that its model does not use."""
    def module(name: str, **attrs) -> None:
        if name in sys.modules:
            return
        try:
            __import__(name)
            return
        except ImportError:
            m = types.ModuleType(name)
            m.__dict__.update(attrs)
            sys.modules[name] = m

    unused = lambda *a, **k: None  # noqa: E731
    module("torchvision")
    module("torchvision.utils", make_grid=unused)
    module("torchvision.transforms", ToTensor=unused)
    module("torch.utils.tensorboard", SummaryWriter=unused)
    module("cv2")


def reference_worker(directory: str, steps: int, warmup: int, batch: int) -> dict:
    """Time the reference at ``directory`` (its ``config/mnist-4.yaml``) in this process."""
    import torch

    sys.path.insert(0, str(Path(directory).resolve()))
    _stub_reference_imports()
    from default_config import get_cfg_defaults  # the reference's own modules
    from model import GNM as ReferenceGNM
    from train import hyperparam_anneal

    cfg = get_cfg_defaults()
    cfg.merge_from_file(str(Path(directory) / "config" / "mnist-4.yaml"))
    cfg.exp_name = "vs_reference"
    cfg.log.num_sample = batch
    hyperparam_anneal(cfg, STEP)
    cfg.train.global_step = STEP
    cfg.log.phase_log = False
    torch.manual_seed(0)
    model = ReferenceGNM(cfg)
    opt = torch.optim.RMSprop(model.parameters(), lr=cfg.train.lr)
    x = torch.rand(batch, cfg.data.inp_channel, cfg.data.img_h, cfg.data.img_w)
    t = cfg.train
    names = ("aux_pres", "aux_where", "aux_depth", "aux_what", "aux_bg", "pres", "where",
             "depth", "what")

    def train_step() -> None:
        _, log_like, kl, *_ = model(x)
        *terms, kl_global, kl_bg = kl
        # the reference's objective: −(log-likelihood − Σ β·KL), each a batch mean
        loss = -log_like.mean(0)
        for name, term in zip(names, terms, strict=True):
            loss = loss + getattr(t, f"beta_{name}") * term.mean(0)
        loss = loss + t.beta_bg * kl_bg.mean(0) + t.beta_global * kl_global.sum(-1).mean(0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.cp)
        opt.step()

    def sample() -> None:
        with torch.no_grad():
            model.sample()

    model.train()
    s_train = statistics.median(_timed(train_step, steps, warmup))
    model.eval()
    s_sample = statistics.median(_timed(sample, steps, warmup))
    return {"train_images_per_s": batch / s_train, "sample_images_per_s": batch / s_sample,
            "params": sum(p.numel() for p in model.parameters()),
            "peak_rss_gib": _peak_rss_gib()}


def _throughput() -> types.ModuleType:
    """benchmarks/train_throughput.py, imported by path (benchmarks are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_throughput",
                                                  _HERE / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gnm_worker(bf16: bool, steps: int, warmup: int, batch: int, preset: str = "mnist4") -> dict:
    """Time gnm (``preset``) in this process, as benchmarks/train_throughput.py does."""
    from gnm.perf import reuse_freed_memory

    reuse_freed_memory()  # what the gnm command does for itself
    r = _throughput().bench(preset, batch, steps, warmup, bf16)
    return {"train_images_per_s": r["train_images_per_s"],
            "sample_images_per_s": r["sample_images_per_s"], "params": r["params"],
            "peak_rss_gib": _peak_rss_gib()}


# --------------------------------------------------------------------------- the driver
def run_variant(variant: str, reference: str | None, steps: int, warmup: int, batch: int,
                threads: int, preset: str = "mnist4") -> dict:
    """One fresh process timing ``variant``; its JSON result."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    env = {k: v for k, v in os.environ.items() if k not in TUNED_ENV}
    if variant == "reference-tuned":
        env.update(TUNED_ENV)
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant,
           "--steps", str(steps), "--warmup", str(warmup), "--batch", str(batch),
           "--threads", str(threads), "--preset", preset]
    if reference:
        cmd += ["--reference", reference]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians per variant over rounds and gnm's ratios to each reference variant (gnm: the
    faster of fp32 and bf16 per figure)."""
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "params"}
           for v, rs in runs.items()}
    out: dict = {"medians": med}
    gnm = [v for v in ("gnm-fp32", "gnm-bf16") if v in med]
    if gnm:
        best = {k: max(med[v][k] for v in gnm) for k in ("train_images_per_s",
                                                         "sample_images_per_s")}
        out["gnm_best"] = best
        for ref in ("reference", "reference-tuned"):
            if ref in med:
                out[f"x_{ref.replace('-', '_')}"] = {k: best[k] / med[ref][k] for k in best}
    return out


def table(summary: dict) -> str:
    lines = ["| variant | train img/s | sample img/s | peak RSS GiB |", "|---|---|---|---|"]
    for v, m in summary["medians"].items():
        lines.append(f"| {v} | {m['train_images_per_s']:.1f} | {m['sample_images_per_s']:.0f} | "
                     f"{m['peak_rss_gib']:.2f} |")
    for ref in ("reference", "reference_tuned"):
        r = summary.get(f"x_{ref}")
        if r:
            lines.append(f"| gnm (best dtype) ÷ {ref.replace('_', '-')} | "
                         f"{r['train_images_per_s']:.2f}× | {r['sample_images_per_s']:.2f}× | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", default=None, help="a checkout of JindongJiang/GNM")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="mnist4", help="gnm's preset (default the paper's MNIST-4)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.worker.startswith("reference"):
            r = reference_worker(args.reference, args.steps, args.warmup, args.batch)
        else:
            r = gnm_worker(args.worker == "gnm-bf16", args.steps, args.warmup, args.batch,
                           args.preset)
        print(json.dumps(r))
        return
    if any(v.startswith("reference") for v in variants):
        if not args.reference:
            p.error("give --reference DIR (a checkout of https://github.com/JindongJiang/GNM), "
                    "or --variants gnm-fp32,gnm-bf16 to time gnm alone.")
        if not (Path(args.reference) / "model.py").is_file():
            p.error(f"--reference {args.reference}: no model.py there; point it at the root of "
                    "a JindongJiang/GNM checkout.")
    from gnm.io import emit_report

    cpu_features = _throughput().cpu_features

    runs: dict[str, list[dict]] = {v: [] for v in variants}
    start = time.time()
    for _ in range(args.rounds):
        for v in variants:  # alternating: A B C D, A B C D, ...
            runs[v].append(run_variant(v, args.reference, args.steps, args.warmup, args.batch,
                                       args.threads, args.preset))
    summary = summarise(runs)
    result = {"benchmark": "vs_reference", "cpu_features": cpu_features(),
              "threads": args.threads, "batch": args.batch, "steps": args.steps,
              "rounds": args.rounds, "preset": args.preset, "seconds": round(time.time() - start),
              "runs": runs, **summary}
    emit_report(result, table(summary), args.out, "vs_reference",
                "# gnm against the reference GNM, side by side\n\n"
                f"Command: `python benchmarks/vs_reference.py --reference DIR --rounds "
                f"{args.rounds} --steps {args.steps} --threads {args.threads}`; CPU flags "
                f"{', '.join(result['cpu_features']) or 'unknown'}.")


if __name__ == "__main__":
    main()
