"""The README's results table, built from measured files only (nothing typed by hand).

Reads ``docs/results/headline.json`` (which result folders are headline rows, in order, with the
commands that reproduce each, and the paper's rows with their source), each row's
``docs/results/DIR/eval.json`` (every metric) and ``metrics.jsonl`` (training steps and the
wall-clock the trainer recorded), and prints the Markdown table followed by the list of
commands. ``--check README.md`` exits 1 when the README's table (between the markers
``<!-- results-table:start -->`` and ``<!-- results-table:end -->``) differs from what this
script prints; ``--write README.md`` replaces it.

    python benchmarks/results_table.py [--index docs/results/headline.json]
        [--check README.md | --write README.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gnm.errors import GNMError
from gnm.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "results" / "headline.json"
START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
DATASETS = {"mnist4": "MNIST-4", "mnist10": "MNIST-10", "mnist4_10": "MNIST-4-10",
            "arrow": "Arrow Room"}
COLUMNS = ("sacc", "dsteps", "ll", "ap50", "ap", "probe")
HEADER = ("| | model | data | training | S-Acc (95% CI) | D-Steps | LL (nats) | AP@0.5 | "
          "AP@[.5:.95] | z_what probe | judge |")


def _num(value: Any, key: str) -> str:
    if value is None:
        return "—"
    if key in ("dsteps", "ll"):
        return f"{value:,.0f}"
    return f"{value:.3f}"


def training(run: Path, alone: bool) -> str:
    """``"56k steps, 96 min alone"`` from a result folder's ``metrics.jsonl`` (the last record's
    step and the trainer's recorded seconds); ``"—"`` when the folder has none."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return "—"
    step, seconds = None, None
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            step = rec.get("step", step)
            seconds = rec.get("elapsed", seconds)
    if step is None:
        return "—"
    text = f"{step / 1000:g}k steps"
    if seconds is not None:
        text += f", {seconds / 60:.0f} min " + ("alone" if alone else "on shared cores")
    return text


def measured_row(k: int, row: dict[str, Any], results: Path) -> str:
    """One table line for a measured result folder."""
    folder = results / row["dir"]
    path = folder / "eval.json"
    if not path.is_file():
        raise GNMError(f"headline row {row['dir']!r} has no {path}; run its gnm eval command "
                       "or remove the row from the index.")
    ev = json.loads(path.read_text())
    cells = []
    for key in COLUMNS:
        text = _num(ev.get(key), key)
        if key == "sacc" and ev.get(key) is not None:
            lo, hi = ev["details"]["sacc"]["ci95"]
            text = f"**{text}** ({lo:.3f}–{hi:.3f})"
        if key == "dsteps" and ev.get(key) is not None:
            text += f" ± {ev['details']['dsteps']['std']:,.0f}"
        cells.append(text)
    judge = ev.get("details", {}).get("sacc", {}).get("judge_version", 1)
    link = f"[{row['model']}](docs/results/{row['dir']}/eval.md)"
    data = f"{DATASETS.get(ev['dataset'], ev['dataset'])}, {ev['image_size']} px"
    return (f"| {k} | {link} | {data} | {training(folder, bool(row.get('alone')))} | "
            + " | ".join(cells) + f" | v{judge} |")


def paper_row(row: dict[str, Any]) -> str:
    """One table line of the paper's numbers (128 px, about 1.1M GPU steps)."""
    cells = " | ".join(_num(row["values"].get(k), k) for k in COLUMNS)
    return (f"| | {row['model']} ({row['source']}) | {DATASETS[row['dataset']]}, 128 px | "
            f"~1.1M steps, GPU | {cells} | by hand |")


def build(index: Path = INDEX) -> str:
    """The Markdown table and the numbered commands that reproduce its measured rows."""
    spec = json.loads(index.read_text())
    results = index.parent
    lines, commands, k = [HEADER, _rule()], [], 0
    for row in spec["rows"]:
        if row.get("paper"):
            lines.append(paper_row(row))
            continue
        k += 1
        lines.append(measured_row(k, row, results))
        commands.append(f"{k}. `{row['train']}` then `{row['eval']}`")
    return "\n".join(lines + ["", "Reproduce row by row (OUT: any new folder):", ""] + commands)


def _rule() -> str:
    return "|" + "---|" * (HEADER.count("|") - 1)


def embedded(readme: str) -> str:
    """The text between the README's table markers (raises GNMError when they are missing)."""
    if START not in readme or END not in readme:
        raise GNMError(f"the README has no {START} ... {END} markers around its results table.")
    return readme.split(START, 1)[1].split(END, 1)[0].strip("\n")


def replace(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    embedded(readme)  # the markers must exist
    head, rest = readme.split(START, 1)
    return f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", default=str(INDEX), help="headline index JSON")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="README", help="exit 1 if README's table differs")
    group.add_argument("--write", metavar="README", help="replace README's table")
    args = p.parse_args(argv)
    try:
        table = build(Path(args.index))
        if args.check:
            if embedded(Path(args.check).read_text()) != table:
                print(f"{args.check}: the results table differs from `python "
                      f"benchmarks/results_table.py`; update it with --write {args.check}.",
                      file=sys.stderr)
                return 1
            print(f"{args.check}: results table up to date")
            return 0
        if args.write:
            path = Path(args.write)
            atomic_write_bytes(path, replace(path.read_text(), table).encode())
            print(f"wrote the results table into {path}")
            return 0
    except GNMError as exc:
        print(f"results_table: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
