"""The paper's Figures 2 and 3 for every model of the comparison tables, from kept weights.

For each dataset column of ``docs/results/paper_tables.json`` (the index
``benchmarks/paper_tables.py`` reads), the model each row names is the file its ``eval.json``
records under ``"model"`` (the weights that were measured). Two pictures per dataset:

* ``OUT/paper_samples_DATASET.png``: one labelled row of ``--n`` prior samples per model that
  can sample (Fig. 2 / Figs. 7-9 / Fig. 12), the same seed for every model;
* ``OUT/paper_components_DATASET.png``: component-wise generation (Fig. 3) for the models that
  can sample component by component (GNM and GENESIS): per model ``--rows`` samples, each
  followed by its components.

Models whose weights are not kept, or that cannot sample (SPACE), are skipped and listed. Prints
one JSON object (what was drawn and skipped, per dataset).

    python benchmarks/paper_figures.py [--index docs/results/paper_tables.json] [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from gnm import load_model
from gnm.errors import GNMError
from gnm.models.base import supports
from gnm.viz.figures import component_samples, prior_samples
from gnm.viz.plot import labelled_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DATASETS = ("mnist4", "mnist10", "mnist4_10")


def models_of(index: Path, dataset: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """``([(row name, weights path)], [skipped reasons])`` for one dataset column."""
    spec = json.loads(index.read_text())
    found, skipped = [], []
    for entry in spec["rows"]:
        if dataset not in entry:
            continue
        result = json.loads((RESULTS / entry[dataset] / "eval.json").read_text())
        path = ROOT / result["model"]
        if not path.is_file():
            skipped.append(f"{entry['row']}: its weights {result['model']} are not kept")
            continue
        found.append((entry["row"], path))
    return found, skipped


def figures(index: Path, out: Path, n: int = 8, rows: int = 2, seed: int = 0
            ) -> dict[str, Any]:
    """Draw both pictures for every dataset with at least one model; returns the summary."""
    summary: dict[str, Any] = {}
    for ds in DATASETS:
        found, skipped = models_of(index, ds)
        samples, components = [], []
        for name, path in found:
            torch.manual_seed(seed)
            model = load_model(path)
            if not supports(model, "sample"):
                skipped.append(f"{name}: cannot sample")
                continue
            samples.append((name, prior_samples(model, n=n, seed=seed, nrow=n)))
            if supports(model, "sample_components"):
                components.append((name, component_samples(model, n=rows, seed=seed)))
        drawn = {}
        if samples:
            drawn["samples"] = str(out / f"paper_samples_{ds}.png")
            labelled_rows(samples, path=drawn["samples"])
        if components:
            drawn["components"] = str(out / f"paper_components_{ds}.png")
            labelled_rows(components, path=drawn["components"])
        summary[ds] = {"models": [s[0] for s in samples], "skipped": skipped, **drawn}
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=RESULTS / "paper_tables.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--n", type=int, default=8, help="prior samples per model")
    ap.add_argument("--rows", type=int, default=2, help="component-wise samples per model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        if not args.index.is_file():
            raise GNMError(f"{args.index} does not exist; it lists the result folders to draw.")
        print(json.dumps(figures(args.index, args.out, args.n, args.rows, args.seed), indent=1))
    except GNMError as exc:
        print(f"paper_figures: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
