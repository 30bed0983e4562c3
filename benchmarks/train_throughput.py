"""Throughput of training, prior sampling and inference of any preset (JSON + Markdown table).

By default the paper's MNIST-4 GNM (preset ``mnist4``: 128 px, ~2.9M parameters), batch 32,
``--threads`` threads (default 2), fp32 and bf16 autocast. ``--preset`` takes one preset, a
comma-separated list, or ``cpu`` for every ``-cpu`` preset of the registry (GNM and each
baseline at 64 px): one table row per preset and dtype. Each figure is the median over
``--steps`` timed repetitions after ``--warmup`` untimed ones, on a freshly initialised model and
uniform random images. Ratios against the reference implementation come from the side-by-side
run of ``benchmarks/vs_reference.py``, not from here. ``--profile`` adds the top operators of
one train step (CPU) in each measured dtype; ``--flops`` adds the floating-point operations of
one train step (forward + backward, convolutions and matrix products, counted by
``torch.utils.flop_counter``) per top-level module, and the GFLOP/s each timed step achieved
(both for a single preset). ``--device cuda`` measures a GPU instead (timings synchronise the
device). Like the ``gnm`` command, the script first makes glibc keep freed memory
(``gnm.perf.reuse_freed_memory``); ``--malloc default`` measures glibc's default instead.

    python benchmarks/train_throughput.py [--preset mnist4|cpu|P1,P2] [--steps 20] [--dtypes fp32]
                                          [--profile] [--flops] [--device cpu|cuda] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from tqdm import tqdm

from gnm.errors import GNMError
from gnm.io import atomic_write_json
from gnm.models.base import supports
from gnm.models.registry import build_model
from gnm.perf import reuse_freed_memory


def _timed(fn, steps: int, warmup: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of ``steps`` calls of ``fn`` after ``warmup`` untimed ones."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return times


def _autocast(device_type: str, bf16: bool) -> torch.autocast:
    """A bf16 autocast context for ``device_type``, a no-op unless ``bf16``."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)


def cpu_features() -> list[str]:
    """The vector / matrix extensions of this CPU that set the fp32 and bf16 kernels' speed
    (from /proc/cpuinfo; empty where it does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return []
    return [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in flags]


def _f(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _model_and_images(preset: str, batch: int, device: torch.device | str = "cpu"
                      ) -> tuple[torch.nn.Module, torch.Tensor]:
    """A freshly initialised ``preset`` model and ``batch`` uniform random images
    ``[batch, C, H, W]`` of its size, both on ``device``."""
    model = build_model(preset).to(device)
    size, ch = model.img_size, model.channels
    return model, torch.rand(batch, ch, size, size, device=device)


def bench(preset: str, batch: int, steps: int, warmup: int, bf16: bool,
          device: torch.device | str = "cpu") -> dict:
    """Median train-step, prior-sampling and inference speed of ``preset`` at ``batch``."""
    device = torch.device(device)
    torch.manual_seed(0)
    model, x = _model_and_images(preset, batch, device)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)

    def train_step() -> None:
        with _autocast(device.type, bf16):
            out = model(x, step=10_000)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def sample() -> None:
        with torch.no_grad(), _autocast(device.type, bf16):
            model.sample(batch)

    infer_op = "decompose" if supports(model, "decompose") else "reconstruct"

    def infer() -> None:  # decompose, or for a model without objects its reconstruction
        with torch.no_grad(), _autocast(device.type, bf16):
            getattr(model, infer_op)(x)

    model.train()
    t_train = statistics.median(_timed(train_step, steps, warmup, device))
    model.eval()
    t_sample = (statistics.median(_timed(sample, steps, warmup, device))
                if supports(model, "sample") else None)  # SPACE has no prior over scenes
    t_infer = statistics.median(_timed(infer, steps, warmup, device))
    return {"preset": preset, "dtype": "bf16" if bf16 else "fp32", "batch": batch,
            "device": str(device),
            "params": sum(p.numel() for p in model.parameters()),
            "train_s_per_step": t_train, "train_images_per_s": batch / t_train,
            "sample_images_per_s": None if t_sample is None else batch / t_sample,
            "infer": infer_op, "infer_images_per_s": batch / t_infer}


def profile(preset: str, batch: int, bf16: bool = False, top: int = 12) -> list[dict]:
    """The ``top`` operators of one CPU train step (forward + backward, under bf16 autocast if
    ``bf16``) by self time: ``[{"op", "self_ms", "share"}]``, share of the step's self time."""
    model, x = _model_and_images(preset, batch)

    def step() -> None:
        with _autocast("cpu", bf16):
            loss = model(x, step=10_000)["loss"]
        loss.backward()

    for _ in range(2):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3,
             "share": e.self_cpu_time_total / total} for e in rows[:top]]


def flops(preset: str, batch: int) -> dict[str, float]:
    """GFLOP of one fp32 train step (forward + backward) of ``preset`` at ``batch``: ``total``
    one entry per top-level submodule of the model, and ``other`` for what runs in the model's
    own forward (the renderer's matrix products). Convolutions and matrix products only;
    ``torch.utils.flop_counter`` counts a multiply-add as 2. Like the timings: a freshly
    initialised model on random images (the renderer's windows, and so ``other``, follow the
    box sizes, which are larger at initialisation than in a trained model)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, x = _model_and_images(preset, batch)
    counter = FlopCounterMode(display=False, depth=2)
    with counter:
        model(x, step=10_000)["loss"].backward()
    out = {"total": counter.get_total_flops() / 1e9}
    for name, ops in counter.get_flop_counts().items():
        if name.count(".") == 1:  # "GNM.encoder", ...
            out[name.split(".", 1)[1]] = sum(ops.values()) / 1e9
    out["other"] = out["total"] - sum(v for k, v in out.items() if k != "total")
    return out


def presets_from(arg: str) -> list[str]:
    """The presets ``--preset`` names: ``cpu`` -> every ``-cpu`` preset in registry order, else
    the comma-separated names (each checked: an unknown one raises GNMError)."""
    from gnm.presets import get_preset, preset_names

    names = ([n for n in preset_names() if n.endswith("-cpu")] if arg.strip() == "cpu"
             else [n.strip() for n in arg.split(",") if n.strip()])
    for name in names:
        get_preset(name)
    return names


def markdown(rows: list[dict]) -> str:
    """The table of :func:`bench` rows."""
    lines = ["| preset | dtype | params | train s/step | train img/s | sample img/s | "
             "infer img/s (op) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['dtype']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['train_s_per_step']:.3f} | {r['train_images_per_s']:.1f} | "
                     f"{_f(r['sample_images_per_s'], 0)} | {r['infer_images_per_s']:.0f} "
                     f"({r['infer']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="mnist4",
                   help="a preset, a comma-separated list, or cpu (every -cpu preset)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--flops", action="store_true", help="GFLOP per train step, per module")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--malloc", default="reuse", choices=["reuse", "default"],
                   help="reuse: keep freed memory (gnm.perf.reuse_freed_memory); default: glibc's")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.device not in ("cpu", "cuda"):
        p.error(f"--device {args.device!r}: give cpu or cuda.")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device here; use --device cpu.")
    if args.profile and args.device != "cpu":
        p.error("--profile profiles the CPU step; leave --device at cpu.")
    try:
        presets = presets_from(args.preset)
    except GNMError as err:
        p.error(f"--preset {args.preset!r}: {err}")
    if not presets:
        p.error("--preset names no preset.")
    if (args.profile or args.flops) and len(presets) > 1:
        p.error("--profile and --flops take a single --preset.")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    malloc = "reuse" if args.malloc == "reuse" and reuse_freed_memory() else "default"
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or set(dtypes) - {"fp32", "bf16"}:
        p.error(f"--dtypes {args.dtypes!r}: give fp32, bf16 or both, comma-separated.")
    rows = [bench(preset, args.batch, args.steps, args.warmup, d == "bf16", device)
            for preset in tqdm(presets, desc="presets", disable=len(presets) == 1)
            for d in dtypes]
    result = {"benchmark": "train_throughput", "threads": args.threads, "steps": args.steps,
              "machine": (torch.cuda.get_device_name(device) if device.type == "cuda"
                          else platform.processor() or platform.machine()),
              "cpu_features": cpu_features(),
              "torch": torch.__version__, "malloc": malloc, "results": rows}
    if args.profile:
        result["profile_train_step"] = {d: profile(presets[0], args.batch, d == "bf16")
                                        for d in dtypes}
    if args.flops:
        result["train_step_gflop"] = flops(presets[0], args.batch)
        for r in rows:
            r["train_gflop_per_s"] = result["train_step_gflop"]["total"] / r["train_s_per_step"]
    print(json.dumps(result, indent=1))
    print("\n" + markdown(rows))
    if args.profile:
        for d, ops in result["profile_train_step"].items():
            print(f"\n| op ({d} train step) | self ms | share |\n|---|---|---|")
            for e in ops:
                print(f"| {e['op']} | {e['self_ms']:.1f} | {e['share']:.1%} |")
    if args.flops:
        print("\n| module (fp32 train step, fwd + bwd) | GFLOP | share |\n|---|---|---|")
        g = result["train_step_gflop"]
        for name, v in g.items():
            print(f"| {name} | {v:.2f} | {v / g['total']:.1%} |")
        print("\n" + ", ".join(f"{r['dtype']}: {r['train_gflop_per_s']:.1f} GFLOP/s achieved"
                                for r in rows))
    if args.json:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
