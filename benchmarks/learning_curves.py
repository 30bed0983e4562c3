"""Learning curves of training runs: S-Acc and ELBO against wall-clock minutes, as one PNG.

Reads each run's ``metrics.jsonl`` (judge records carry ``sacc`` and ``elapsed`` seconds; the
window records ``elbo``, ``num_objects`` and ``elapsed``), draws two panels side by side (S-Acc
vs minutes, ELBO vs minutes; one line per run, labelled by the run directory's name or by the
``LABEL=`` before it), and prints the final values as JSON and as a Markdown table.

    python benchmarks/learning_curves.py runs/a "GNM-Gaussian=runs/b" --out docs/img/curves.png

``--keys kl_global,kl_where --x step`` draws other logged terms (see ``gnm.viz.curves.PANELS``)
against the training step instead. ``--at 30,60,120`` adds time to quality: each run's last
S-Acc judged by 30, 60 and 120 minutes of wall time (``gnm.viz.curves.sacc_at``; set
``train.judge_n=500`` in the run for intervals that mean something).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gnm.errors import GNMError
from gnm.train.logger import read_metrics
from gnm.viz.curves import PANELS, X_AXES, final_values, learning_curves, sacc_at


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(finals: dict[str, dict]) -> str:
    """The final values per run as a Markdown table."""
    lines = ["| run | steps | minutes | ELBO (nats) | objects | S-Acc | S-Acc 95% CI |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, f in finals.items():
        ci = f["sacc_ci95"]
        lines.append(f"| {name} | {_fmt(f['step'], 'd')} | {_fmt(f['minutes'], '.1f')} | "
                     f"{_fmt(f['elbo'], '.1f')} | {_fmt(f['num_objects'], '.2f')} | "
                     f"{_fmt(f['sacc'], '.3f')} | "
                     f"{'-' if ci is None else f'{ci[0]:.3f}-{ci[1]:.3f}'} |")
    return "\n".join(lines)


def markdown_at(at: dict[str, list], minutes: list[float]) -> str:
    """The time-to-quality table: one row per run, one column per time."""
    head = " | ".join(f"S-Acc by {m:g} min" for m in minutes)
    lines = [f"| run | {head} |", "|---|" + "---|" * len(minutes)]
    for name, cells in at.items():
        shown = ["not judged yet" if c is None else
                 f"{c['sacc']:.3f} (step {c['step']:,}, n {c['judge_n']}"
                 + (f"; the run's last, at {c['minutes']:.0f} min)" if c["ended"] else ")")
                 for c in cells]
        lines.append(f"| {name} | {' | '.join(shown)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, draw the curves, print the final values; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+",
                   help="run directories (each holding metrics.jsonl), optionally LABEL=DIR")
    p.add_argument("--out", default="docs/img/learning_curves.png", help="output PNG")
    p.add_argument("--keys", default="sacc,elbo",
                   help="comma-separated panels, from: " + ", ".join(PANELS))
    p.add_argument("--x", default="minutes", choices=list(X_AXES), help="x axis")
    p.add_argument("--at", default=None, help="comma-separated minutes for time to quality "
                   "(e.g. 30,60,120)")
    args = p.parse_args(argv)
    try:
        minutes = [float(m) for m in (args.at or "").split(",") if m.strip()]
    except ValueError:
        p.error(f"--at {args.at!r}: give minutes separated by commas, e.g. 30,60,120.")
    try:
        runs = {}
        for arg in args.runs:
            label, sep, run = arg.rpartition("=")
            records = read_metrics(run)
            if not records:
                raise GNMError(f"{Path(run) / 'metrics.jsonl'} is missing or empty; pass run "
                               "directories written by gnm train.")
            name = label if sep else Path(run).resolve().name
            runs[name if name not in runs else arg] = records
        keys = tuple(k.strip() for k in args.keys.split(",") if k.strip())
        learning_curves(runs, keys=keys, path=args.out, x=args.x)
    except GNMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finals = {name: final_values(records) for name, records in runs.items()}
    at = {name: sacc_at(records, minutes) for name, records in runs.items()} if minutes else {}
    print(json.dumps({"out": str(args.out), "final": finals,
                      **({"sacc_at": {"minutes": minutes, "runs": at}} if minutes else {})},
                     indent=1))
    print(markdown(finals))
    if minutes:
        print("\n" + markdown_at(at, minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
