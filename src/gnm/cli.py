"""The ``gnm`` command line: thin wrappers over library functions.

Every subcommand parses its options and calls one public function; errors a user can act on
(:class:`gnm.errors.GNMError`) are printed as one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gnm.errors import GNMError, is_torch_write_failure, os_error_message

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def command(register: Callable[[argparse._SubParsersAction], None]):
    """Decorator: ``register(subparsers)`` adds one subcommand to ``gnm``."""
    _COMMANDS.append(register)
    return register


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="folder holding mnist/ (default: $GNM_DATA or ./data)")


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run directory, checkpoint (.pt) or weights (.safetensors)")


# --------------------------------------------------------------------------- data
def _cmd_data_mnist(args: argparse.Namespace) -> int:
    from gnm.data.mnist import ensure_mnist

    folder = ensure_mnist(args.data_dir, allow_download=not args.no_download, verbose=True)
    print(f"MNIST ready and verified (sha256) in {folder}")
    return 0


def _names(text: str | None) -> tuple[str, ...]:
    """``"red, blue"`` -> ``("red", "blue")``; None or empty -> ``()``."""
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _cmd_data_make(args: argparse.Namespace) -> int:
    from gnm.data.store import make_scenes

    rep = make_scenes(args.dataset, args.split, args.n, args.out, size=args.size,
                      seed=args.seed, fmt=args.format, shard_size=args.shard_size,
                      data_dir=args.data_dir, progress=not args.quiet,
                      colours=_names(args.colours), shapes=_names(args.shapes))
    what = f"{args.dataset}/{args.split} scenes"
    if rep.removed_tmp:
        print(f"removed {len(rep.removed_tmp)} temporary file(s) left by a write killed midway")
    if rep.rebuilt:
        shown = "; ".join(rep.rebuilt[:5]) + (f"; +{len(rep.rebuilt) - 5} more"
                                              if len(rep.rebuilt) > 5 else "")
        print(f"rebuilt {len(rep.rebuilt)} damaged or missing file(s) in {args.out}: {shown}")
    if rep.written == 0:
        print(f"{args.out} holds all {rep.n} {what}, verified (sha256); "
              f"{'nothing else to do' if rep.rebuilt else 'nothing to do'} "
              f"(manifest {rep.manifest})")
        return 0
    done = f"{rep.written}" if rep.written == rep.n else f"{rep.written} of {rep.n}"
    print(f"wrote {done} {what} to {args.out} (manifest {rep.manifest}, preview "
          f"{Path(args.out) / 'preview.png'})")
    return 0


@command
def _register_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch MNIST and make scene datasets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{mnist,make}")
    m = dsub.add_parser("mnist", help="find, fetch and verify the raw MNIST IDX files")
    _data_dir_arg(m)
    m.add_argument("--no-download", action="store_true", help="only look on disk")
    m.set_defaults(func=_cmd_data_mnist)
    k = dsub.add_parser("make", help="export scenes as checksummed shards (resumable)")
    k.add_argument("dataset", help="mnist4 | mnist10 | mnist4_10 | arrow")
    k.add_argument("--split", default="train", help="train | val | test (default train)")
    k.add_argument("--n", type=int, required=True, help="number of scenes")
    k.add_argument("--out", required=True, help="output folder")
    k.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    k.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    k.add_argument("--format", default="npz", help="npz (shards) or png (one file per scene)")
    k.add_argument("--shard-size", type=int, default=1000, help="scenes per shard")
    k.add_argument("--colours", help="arrow only: comma-separated colour names to draw from "
                   "(default all 8: gray,red,blue,green,brown,purple,cyan,yellow)")
    k.add_argument("--shapes", help="arrow only: comma-separated non-arrow shapes, two or three "
                   "of sphere,cube,cylinder (default all)")
    k.add_argument("--quiet", action="store_true", help="no progress bar")
    _data_dir_arg(k)
    k.set_defaults(func=_cmd_data_make)


# --------------------------------------------------------------------------- train / sample
def _cmd_train(args: argparse.Namespace) -> int:
    from gnm.config import set_override
    from gnm.presets import get_preset
    from gnm.train.trainer import train

    if args.preset is None and not args.resume:
        raise GNMError("gnm train needs --preset NAME (or --resume to continue a run in --out).")
    cfg = None
    if args.preset is not None:
        cfg = get_preset(args.preset)
    elif args.set:  # overrides on the run's own config (newest checkpoint, else config.json)
        from gnm.train.resume import run_config

        cfg = run_config(args.out)
        if cfg is None:
            raise GNMError(f"{args.out} holds no checkpoint and no config.json to resume; pass "
                           "--preset NAME to start a run there.")
    for assignment in args.set or []:
        set_override(cfg, assignment)
    result = train(cfg, args.out, resume=args.resume)
    print(f"trained to step {result['step']}; checkpoint {result['checkpoint']}")
    return 0


@command
def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (CPU, CUDA, or under torchrun for DDP)")
    p.add_argument("--preset", default=None, help="preset name, e.g. mnist4-cpu or mnist4")
    p.add_argument("--out", required=True, help="run directory (config, metrics, checkpoints)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. train.steps=2000 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=_cmd_train)


def _cmd_export(args: argparse.Namespace) -> int:
    import hashlib

    from gnm.train.checkpoint import export_weights

    out = export_weights(args.model, args.out, fp16=args.fp16)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, sha256 {digest}) and "
          f"{out.with_suffix('.json')}")
    return 0


@command
def _register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a run's weights as safetensors + JSON config")
    _model_arg(p)
    p.add_argument("--out", required=True, help="target file, ending in .safetensors")
    p.add_argument("--fp16", action="store_true", help="store floats in half precision")
    p.set_defaults(func=_cmd_export)


def _cmd_refit_prior(args: argparse.Namespace) -> int:
    from gnm.train.refit import refit_prior

    r = refit_prior(args.model, args.out, steps=args.steps, lr=args.lr,
                    batch_size=args.batch_size, seed=args.seed, progress=not args.quiet)
    print(f"refit the prior for {r['steps']} steps in {r['seconds']:.0f} s: KL(q || p) on "
          f"{r['n_val']} val scenes {r['val_kl_before']:.2f} -> {r['val_kl_after']:.2f} nats; "
          f"wrote {args.out} (checkpoint, config.json, refit.json)")
    return 0


@command
def _register_refit_prior(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refit-prior", help="train only StructDRAW's prior head on a trained "
                       "GNM's posterior (everything else frozen) -> a new run directory")
    _model_arg(p)
    p.add_argument("--out", required=True, help="new run directory")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_refit_prior)


def _cmd_fit_prior(args: argparse.Namespace) -> int:
    from gnm.models.aggregate_prior import fit_prior

    try:
        ks = tuple(int(k) for k in args.k.split(","))
    except ValueError:
        raise GNMError(f"--k {args.k!r} must be a comma list of component counts, e.g. "
                       "10,20,50.") from None
    path, prior = fit_prior(args.model, args.kind, n=args.n, ks=ks, seed=args.seed,
                            progress=not args.quiet, select=args.select)
    if args.select == "cycle":
        c = prior.info["cycle"]

        def per_k(key: str) -> str:
            return ", ".join(f"K={k}: {v[key]:.3f}" for k, v in c["per_k"].items())

        why = (f"chosen by the cycle rule: median cycle error {per_k('cycle')} against "
               f"{c['floor']:.3f} for held-out scenes' posteriors; near copies "
               f"{per_k('near_copy')} against {c['real_copy']:.3f}")
    else:
        why = ("held-out log-likelihood per latent: "
               + ", ".join(f"K={k}: {v:.1f}" for k, v in prior.info["held_out_ll"].items()))
    print(f"fitted a {args.kind} with K={prior.info['k']} components to the posterior means of "
          f"{args.n} training scenes ({why}); wrote {path}. "
          f"Sample it with: gnm sample {args.model} --prior {args.kind} ...")
    return 0


@command
def _register_fit_prior(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-prior", help="fit a density to a model's aggregate posterior of z_g "
                       "(beyond the paper; gnm sample --prior uses it)")
    _model_arg(p)
    p.add_argument("--kind", default="gmm", help="gmm (full-covariance Gaussian mixture)")
    p.add_argument("--n", type=int, default=5000, help="training scenes encoded (default 5000)")
    p.add_argument("--k", default="10,20,50", help="component counts tried (default 10,20,50)")
    p.add_argument("--select", default="cycle", choices=("cycle", "heldout"),
                   help="how K is chosen: cycle (default; the smallest K whose draws decode and "
                   "re-encode about as consistently as held-out scenes' latents, without "
                   "copying training scenes; docs/priors.md) or heldout (3-fold held-out "
                   "log-likelihood)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit_prior)


def _cmd_sample(args: argparse.Namespace) -> int:
    from gnm.devices import check_device
    from gnm.sampling import sample_to_npz

    check_device(args.device)
    out = sample_to_npz(args.model, args.n, args.out, seed=args.seed,
                        batch_size=args.batch_size, device=args.device,
                        temperature=args.temperature, prior=args.prior)
    print(f"wrote {args.n} samples to {out} (preview {Path(out).with_suffix('.png')})")
    return 0


@command
def _register_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample scenes from a trained model's prior")
    _model_arg(p)
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="output .npz (key 'images', uint8 [N,H,W,C])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="factor on the global prior's standard deviations (default 1: the "
                        "model's prior, what S-Acc measures; < 1 draws nearer its modes)")
    p.add_argument("--prior", default=None, help="sample z_g from a density fitted with gnm "
                   "fit-prior (gmm) instead of the model's prior: beyond the paper")
    p.set_defaults(func=_cmd_sample)


def _cmd_show(args: argparse.Namespace) -> int:
    from gnm.devices import check_device
    from gnm.eval.run import real_test_scenes
    from gnm.train.checkpoint import load_model_and_config
    from gnm.viz.figures import all_figures

    check_device(args.device)
    model, cfg = load_model_and_config(args.model, device=args.device)
    x = real_test_scenes(cfg, 16, args.data_dir, args.seed)["image"].to(args.device)
    skipped: dict[str, str] = {}
    paths = all_figures(model, x, args.out, seed=args.seed, skipped=skipped)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    if not paths:
        raise GNMError(f"model {type(model).__name__} supports none of gnm show's pictures "
                       f"({', '.join(skipped)}); see gnm/models/base.py for what they need.")
    print(f"wrote {len(paths)} pictures to {args.out}: {', '.join(p.name for p in paths.values())}")
    return 0


@command
def _register_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="the paper's pictures (samples, decompositions, traversals, "
                       "z_s resampling) as PNG")
    _model_arg(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    _data_dir_arg(p)
    p.set_defaults(func=_cmd_show)


# --------------------------------------------------------------------------- judge
def _cmd_judge(args: argparse.Namespace) -> int:
    from gnm.eval.images import read_images
    from gnm.eval.judge import MIN_IMAGES
    from gnm.eval.judges import judge_weights, require_judge
    from gnm.io import atomic_write_json, check_writable

    src = Path(args.images)
    out = Path(args.json) if args.json else (src / "judge.json" if src.is_dir()
                                             else src.with_suffix(".judge.json"))
    judge = require_judge(args.dataset, "gnm judge")
    images, source = read_images(args.images)
    check_writable(out.parent)
    print(f"judging {source}")
    weights = judge_weights(args.dataset, args.weights)
    result = judge(images, args.dataset, progress=not args.quiet, min_images=1, **weights)
    if result["n"] < MIN_IMAGES:
        lo, hi = result["ci95"]
        print(f"gnm: warning: only {result['n']} images, so the 95% interval "
              f"({lo:.3f}-{hi:.3f}) is wide; judge at least {MIN_IMAGES} (better a few hundred) "
              "for a useful S-Acc.", file=sys.stderr)
    atomic_write_json(out, result)
    lo, hi = result["ci95"]
    reasons = ", ".join(f"{k} {v}" for k, v in result["reasons"].items() if v)
    print(f"S-Acc {result['sacc']:.3f} (95% CI {lo:.3f}-{hi:.3f}, n={result['n']}; strict "
          f"{result['sacc_strict']:.3f}) [{reasons}]; verdicts in {out}")
    return 0


@command
def _register_judge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="S-Acc: judge the scene structure of any images")
    p.add_argument("--dataset", required=True, help="mnist4 | mnist10 | mnist4_10 | arrow")
    p.add_argument("--images", required=True, help=".npz with key 'images', or a PNG folder")
    p.add_argument("--json", default=None, help="where to write per-image verdicts "
                   "(default: beside the images)")
    p.add_argument("--weights", default=None, help="judge classifier (arrow: network) weights "
                   "(default: shipped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_judge)


# --------------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    from gnm.devices import check_device
    from gnm.eval.run import evaluate_file, markdown, parse_metrics

    check_device(args.device)
    strict = args.metrics.strip() not in ("all", "quick")  # named metrics must all run
    result = evaluate_file(args.model, parse_metrics(args.metrics), args.out, strict=strict,
                           n=args.n, seed=args.seed, ll_k=args.ll_k, ll_n=args.ll_n,
                           dsteps_cap=args.dsteps_cap, data_dir=args.data_dir,
                           device=args.device, progress=not args.quiet)
    print(markdown(result))
    print(f"wrote {Path(args.out) / 'eval.json'} and {Path(args.out) / 'eval.md'}")
    return 0


@command
def _register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="metrics of a trained model -> eval.json + eval.md")
    _model_arg(p)
    p.add_argument("--metrics", default="quick", help="comma list of sacc,dsteps,ll,ap50,ap,"
                   "probe,fd; quick (default: sacc,ap50,ap,probe, about a minute at --n 1000 "
                   "on a CPU); or all (adds fd, ll and dsteps, which trains 3 classifiers of up "
                   "to 5,000 steps: tens of minutes)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=1000, help="samples / test scenes (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ll-k", type=int, default=100, help="importance samples per image")
    p.add_argument("--ll-n", type=int, default=None, help="test scenes for LL (default 200)")
    p.add_argument("--dsteps-cap", type=int, default=5000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no cost estimate, progress lines or bars")
    _data_dir_arg(p)
    p.set_defaults(func=_cmd_eval)


# --------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise GNMError(f"--threads {args.threads} must be >= 0 (0: torch's default).")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.train:
        from gnm.demo_train import run_demo_training

        if args.model is not None or args.dataset is not None:
            raise GNMError(f"{'--model' if args.model is not None else '--dataset'} and --train "
                           "exclude each other: --train shows the model it trains.")
        run_demo_training(args.out or "out/demo-train", minutes=args.minutes, n=args.n,
                          seed=args.seed, data_dir=args.data_dir, size=args.size)
        return 0
    from gnm.demo import run_demo

    run_demo(args.out or "out/demo", model=args.model, n=args.n, seed=args.seed,
             data_dir=args.data_dir, size=args.size, dataset=args.dataset)
    return 0


@command
def _register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a pretrained GNM at work (or --train one): one HTML report")
    p.add_argument("--out", default=None,
                   help="output folder (default out/demo, with --train out/demo-train)")
    p.add_argument("--model", default=None, help="run directory, checkpoint (.pt) or weights "
                   "(.safetensors) to show (default: the bundled MNIST-4 model)")
    p.add_argument("--dataset", default=None, help="show the bundled model of this dataset "
                   "(default mnist4; an error lists the datasets with a bundled model)")
    p.add_argument("--n", type=int, default=200, help="prior samples judged (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128, help="dataset previews' side in pixels")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: torch's default, one per core)")
    p.add_argument("--train", action="store_true",
                   help="train a small model from scratch first, then show it")
    p.add_argument("--minutes", type=float, default=5.0,
                   help="with --train: wall-clock minutes of training (default 5)")
    _data_dir_arg(p)
    p.set_defaults(func=_cmd_demo)


# --------------------------------------------------------------------------- main
def import_modules(names: Sequence[str]) -> None:
    """Import each module of ``gnm --import MODULE`` (one sentence if it cannot be imported)."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise GNMError(f"--import {name}: cannot import it ({exc}); give a module on the "
                           "Python path (e.g. my_models for my_models.py in the current "
                           "folder).") from exc


def build_parser() -> argparse.ArgumentParser:
    """The full ``gnm`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="gnm", description="Generative Neurosymbolic Machines: data, training, sampling, "
        "evaluation.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import MODULE first (repeatable): a module that "
                        "registers a model of its own (gnm.models.registry.register_model)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gnm`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from gnm import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from gnm.perf import reuse_freed_memory

    reuse_freed_memory()  # fewer page faults on large temporaries (GNM_MALLOC=default: off)
    try:
        import_modules(args.imports)
        return int(args.func(args) or 0)
    except GNMError as exc:
        print(f"gnm: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write or read the code did not name: still one sentence
        print(f"gnm: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not is_torch_write_failure(exc):
            raise
        print("gnm: error: torch.save failed part-way (the disk is probably full); free some "
              "disk space or choose a folder on another disk, then rerun.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gnm: interrupted; rerun the same command to resume where supported.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
