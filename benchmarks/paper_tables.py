"""The paper's comparison tables, ours beside the paper's, built from measured files only.

Table 1 / 3 layout (S-Acc with its 95% interval, D-Steps, LL per dataset, one row per model) and
Table 4 (AP@0.5, AP@[.5:.95], z_what probe for GNM and SPACE). Which result folder fills which
cell is listed in ``docs/results/paper_tables.json``::

    {"rows": [{"row": "GNM", "mnist4": "mnist4-bundled", "mnist10": "...", ...}, ...]}

(an entry's optional ``"label"`` is shown beside "ours", e.g. a setting that differs from the
paper's).

where each value is a folder under ``docs/results`` holding the ``eval.json`` that
``gnm eval RUN --metrics all --n 1000 --out docs/results/DIR`` writes. The paper's numbers are
the data below (Tables 1-4 of the paper, 128 px, GPU training). A cell with no folder, or a
folder without that metric, prints "—". Prints the Markdown tables and then one JSON object;
``--write FILE`` replaces the text between ``<!-- paper-tables:start -->`` and
``<!-- paper-tables:end -->`` in FILE (atomically).

    python benchmarks/paper_tables.py [--index docs/results/paper_tables.json] [--write FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gnm.errors import GNMError
from gnm.eval.stats import newcombe_difference
from gnm.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
INDEX = RESULTS / "paper_tables.json"
START, END = "<!-- paper-tables:start -->", "<!-- paper-tables:end -->"
DATASETS = {"mnist4": "MNIST-4", "mnist10": "MNIST-10", "mnist4_10": "MNIST-4-10",
            "arrow": "Arrow Room"}

#: The paper's numbers: row -> dataset -> metrics (Table 1: Arrow Room, MNIST-4, MNIST-10;
#: Table 2: ConvDRAW-MLP; Table 3: MNIST-4-10; Table 4: ap50, ap, probe).
PAPER: dict[str, dict[str, dict[str, float]]] = {
    "GNM": {"mnist4": {"sacc": 0.984, "dsteps": 3920, "ll": 10964, "ap50": 0.905, "ap": 0.487,
                       "probe": 0.983},
            "mnist10": {"sacc": 0.824, "dsteps": 2760, "ll": 10450, "ap50": 0.905, "ap": 0.459,
                        "probe": 0.984},
            "mnist4_10": {"sacc": 0.692, "dsteps": 5279, "ll": 10693},
            "arrow": {"sacc": 0.976, "dsteps": 11099, "ll": 33809}},
    "GENESIS": {"mnist4": {"sacc": 0.296, "dsteps": 200, "ll": 10496},
                "mnist10": {"sacc": 0.000, "dsteps": 160, "ll": 9560},
                "mnist4_10": {"sacc": 0.016, "dsteps": 199, "ll": 10084},
                "arrow": {"sacc": 0.092, "dsteps": 1900, "ll": 33241}},
    "ConvDRAW": {"mnist4": {"sacc": 0.048, "dsteps": 2400, "ll": 11020},
                 "mnist10": {"sacc": 0.000, "dsteps": 1200, "ll": 10544},
                 "mnist4_10": {"sacc": 0.000, "dsteps": 959, "ll": 10756},
                 "arrow": {"sacc": 0.176, "dsteps": 3800, "ll": 33740}},
    "ConvDRAW-8": {"mnist4": {"sacc": 0.604, "dsteps": 3440, "ll": 11036},
                   "mnist10": {"sacc": 0.000, "dsteps": 1680, "ll": 10590},
                   "mnist4_10": {"sacc": 0.004, "dsteps": 1759, "ll": 10775},
                   "arrow": {"sacc": 0.420, "dsteps": 3499, "ll": 33749}},
    "ConvDRAW-MLP": {"mnist10": {"sacc": 0.104, "dsteps": 1519, "ll": 10406},
                     "arrow": {"sacc": 0.844, "dsteps": 2799, "ll": 33707}},
    "VAE": {"mnist4": {"sacc": 0.000, "dsteps": 319, "ll": 10895},
            "mnist10": {"sacc": 0.000, "dsteps": 279, "ll": 10031},
            "arrow": {"sacc": 0.036, "dsteps": 5499, "ll": 33672}},
    "SPACE": {"mnist4": {"ap50": 0.906, "ap": 0.464, "probe": 0.979},
              "mnist10": {"ap50": 0.905, "ap": 0.453, "probe": 0.980}},
}


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if key in ("dsteps", "ll") else f"{value:.3f}"


def load_rows(index: Path) -> list[dict[str, Any]]:
    """The index's rows, each ``{"row": name, dataset: {metric: value, "ci": [lo, hi]}}`` with
    the measured values of the folders it names."""
    if not index.is_file():
        raise GNMError(f"{index} does not exist; it lists which result folder fills which cell.")
    spec = json.loads(index.read_text())
    rows = []
    for entry in spec["rows"]:
        row: dict[str, Any] = {"row": entry["row"], "label": entry.get("label")}
        for ds in DATASETS:
            if ds not in entry:
                continue
            path = RESULTS / entry[ds] / "eval.json"
            if not path.is_file():
                raise GNMError(f"{path} does not exist; run gnm eval ... --out "
                               f"docs/results/{entry[ds]} first or fix {index.name}.")
            result = json.loads(path.read_text())
            if result.get("dataset") != ds:
                raise GNMError(f"{path} measures dataset {result.get('dataset')!r}, but "
                               f"{index.name} puts it in the {ds} column.")
            cell = {k: result.get(k) for k in ("sacc", "dsteps", "ll", "ap50", "ap", "probe")}
            sacc = result.get("details", {}).get("sacc") or {}
            cell.update(ci=sacc.get("ci95"), dir=entry[ds], image_size=result.get("image_size"),
                        n=result.get("n"), judge=sacc.get("judge_version"))
            row[ds] = cell
        rows.append(row)
    return rows


def _sacc(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("sacc") is None:
        return "—"
    ci = cell.get("ci")
    mark = "" if cell.get("judge") == 2 else "†"
    text = f"{cell['sacc']:.3f} ({ci[0]:.2f}–{ci[1]:.2f})" if ci else f"{cell['sacc']:.3f}"
    return text + mark


def table1(rows: list[dict[str, Any]]) -> str:
    """Markdown: per dataset S-Acc, D-Steps, LL, ours (CPU, 64 px) then the paper's (GPU, 128
    px), one row per model."""
    head = "| model | " + " | ".join(f"{DATASETS[d]} S-Acc | D-Steps | LL" for d in DATASETS)
    lines = [head + " |", "|---" * (1 + 3 * len(DATASETS)) + "|"]
    names = [r["row"] for r in rows] + [n for n in PAPER if n not in {r["row"] for r in rows}]
    by_name = {r["row"]: r for r in rows}
    for name in names:
        if name == "SPACE":
            continue  # no samples: Table 4 only
        ours, paper = by_name.get(name, {}), PAPER.get(name, {})
        cells = []
        for d in DATASETS:
            c = ours.get(d)
            cells += [_sacc(c), _fmt((c or {}).get("dsteps"), "dsteps"),
                      _fmt((c or {}).get("ll"), "ll")]
        label = f"ours, {ours['label']}" if ours.get("label") else "ours"
        lines.append(f"| {name}, {label} | " + " | ".join(cells) + " |")
        pcells = []
        for d in DATASETS:
            p = paper.get(d, {})
            pcells += [_fmt(p.get(k), k) for k in ("sacc", "dsteps", "ll")]
        lines.append(f"| {name}, paper | " + " | ".join(pcells) + " |")
    return "\n".join(lines)


def table4(rows: list[dict[str, Any]]) -> str:
    """Markdown: AP@0.5, AP@[.5:.95] and the z_what probe of GNM and SPACE, ours and paper."""
    lines = ["| model | data | AP@0.5 | AP@[.5:.95] | probe | paper AP@0.5 | paper AP | "
             "paper probe |", "|---" * 8 + "|"]
    by_name = {r["row"]: r for r in rows}
    for name in ("GNM", "SPACE"):
        for d in ("mnist10", "mnist4"):
            c, p = by_name.get(name, {}).get(d) or {}, PAPER[name].get(d, {})
            lines.append(f"| {name} | {DATASETS[d]} | " + " | ".join(
                [_fmt(c.get(k), k) for k in ("ap50", "ap", "probe")]
                + [_fmt(p.get(k), k) for k in ("ap50", "ap", "probe")]) + " |")
    return "\n".join(lines)


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, float]:
    """Difference of two measured S-Accs ``a - b`` with its 95% interval (Newcombe's hybrid
    score interval of two independent proportions, :func:`gnm.eval.stats.newcombe_difference`;
    samples of sizes ``a["n"]``, ``b["n"]``): ``(d, lo, hi)``."""
    return newcombe_difference(round(a["sacc"] * a["n"]), a["n"], round(b["sacc"] * b["n"]),
                               b["n"])


def ordering(rows: list[dict[str, Any]], dataset: str) -> list[str]:
    """Markdown bullets for the paper's S-Acc order on ``dataset`` (models sorted by the paper's
    value), restricted to the models we measured: one per adjacent pair, saying whether ours
    keeps it (the 95% interval of our difference lies above zero), reverses it (below zero) or
    cannot tell (it contains zero), with the numbers; then one bullet naming the models of the
    paper's table we have not measured."""
    by_name = {r["row"]: r.get(dataset) for r in rows}
    paper = sorted(((v[dataset]["sacc"], k) for k, v in PAPER.items()
                    if "sacc" in v.get(dataset, {})), reverse=True)

    def measured(name: str) -> bool:
        c = by_name.get(name)
        return bool(c and c.get("sacc") is not None and c.get("n"))

    have = [(p, k) for p, k in paper if measured(k)]
    lines = []
    for (pa, a), (pb, b) in zip(have, have[1:], strict=False):
        ca, cb = by_name[a], by_name[b]
        d, lo, hi = compare(ca, cb)
        verdict = ("holds" if lo > 0 else "reversed" if hi < 0
                   else "equal (both 0)" if ca["sacc"] == cb["sacc"] == 0
                   else "not resolved (the interval contains 0)")
        lines.append(f"- {a} ({pa:.3f}) {'>' if pa > pb else '='} {b} ({pb:.3f}) in the paper: "
                     f"ours {ca['sacc']:.3f} vs {cb['sacc']:.3f}, difference {d:+.3f} "
                     f"({lo:+.3f} to {hi:+.3f}): {verdict}.")
    missing = [k for _, k in paper if not measured(k)]
    if missing:
        lines.append(f"- not measured here: {', '.join(missing)}.")
    return lines


def render(rows: list[dict[str, Any]]) -> str:
    """Both tables with their captions."""
    return ("Scene structure accuracy, discriminability and log-likelihood (the paper's Tables 1 "
            "and 3). Ours: the CPU recipes at 64 px, S-Acc of 1,000 prior samples by the "
            "project's judge with its 95% interval; the paper: 128 px, GPU, 250 samples judged "
            "by hand. LL is in nats per image and scales with the pixel count, so ours (64 px) "
            "and the paper's (128 px) are not comparable. † judged by the judge's version 1 "
            "(docs/judge.md; those weights are not kept).\n\n" + table1(rows)
            + "\n\nRepresentation (the paper's Table 4): box AP against the scenes' true boxes "
            "and the accuracy of a linear probe of z_what for the digit class.\n\n"
            + table4(rows) + "\n\nThe paper's S-Acc order, pair by pair, against ours (95% "
            "interval of the difference of two proportions, n samples each):\n\n"
            + "\n\n".join(f"{DATASETS[d]}:\n\n" + "\n".join(ordering(rows, d))
                            for d in DATASETS) + "\n")


def write(path: Path, text: str) -> None:
    """Replace the marked block of ``path`` with ``text`` (atomic)."""
    doc = path.read_text()
    if START not in doc or END not in doc:
        raise GNMError(f"{path} has no {START} ... {END} block to replace.")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_bytes(path, (head + START + "\n" + text + END + tail).encode())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=INDEX)
    ap.add_argument("--write", type=Path, default=None, help="file with the marked block")
    args = ap.parse_args(argv)
    try:
        rows = load_rows(args.index)
        text = render(rows)
        print(text)
        print(json.dumps({"rows": rows, "paper": PAPER}))
        if args.write is not None:
            write(args.write, text)
    except GNMError as exc:
        print(f"paper_tables: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
