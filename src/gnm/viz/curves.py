"""Learning curves of training runs against wall-clock minutes, from their ``metrics.jsonl``.

The trainer logs two kinds of records (:mod:`gnm.train.trainer`): window means every
``log_every`` steps (``elbo`` in nats per image, ``num_objects``, ``elapsed`` seconds, ...) and,
with ``train.judge_every``, judge records (``sacc`` with ``sacc_lo`` / ``sacc_hi``, ``elapsed``).
:func:`curve` picks one key out of either kind; :func:`learning_curves` draws one panel per key
with one line per run, side by side, as one PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gnm.errors import GNMError
from gnm.viz.plot import line_chart, side_by_side

#: Panel settings per metric key: title, y label, fixed y range (None: the data's).
PANELS: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "sacc": ("S-Acc of prior samples (judge)", "S-Acc", (0.0, 1.0)),
    "elbo": ("ELBO (training batches)", "nats per image", None),
    "num_objects": ("objects per scene (inferred, training batches)", "objects", None),
    "kl_global": ("KL of z_g (training batches)", "nats per image", None),
    "kl_where": ("KL of z_where (training batches)", "nats per image", None),
}

#: x axes a curve can be drawn against: the record key, its divisor and the axis label.
X_AXES: dict[str, tuple[str, float, str]] = {
    "minutes": ("elapsed", 60.0, "wall-clock minutes"),  # elapsed is in seconds
    "step": ("step", 1.0, "training step"),
}

Records = Sequence[Mapping[str, Any]]


def curve(records: Records, key: str, x: str = "minutes") -> tuple[list[float], list[float]]:
    """``(xs, values)`` of ``key`` over the records that carry it and the x key: wall-clock
    minutes (from ``elapsed`` seconds) for ``x="minutes"``, the training step for ``"step"``."""
    if x not in X_AXES:
        raise GNMError(f"unknown x axis {x!r}; use one of {', '.join(X_AXES)}.")
    xkey, scale, _ = X_AXES[x]
    xs, ys = [], []
    for r in records:
        if key in r and xkey in r and isinstance(r[key], (int, float)):
            xs.append(float(r[xkey]) / scale)
            ys.append(float(r[key]))
    return xs, ys


def final_values(records: Records) -> dict[str, Any]:
    """The last logged value of each curve key, with the step and minutes it was logged at:
    ``{"step", "minutes", "elbo", "num_objects", "sacc", "sacc_ci95"}`` (None when never logged)."""
    out: dict[str, Any] = {"step": None, "minutes": None, "elbo": None, "num_objects": None,
                           "sacc": None, "sacc_ci95": None}
    for r in records:
        if "step" in r:
            out["step"] = max(out["step"] or 0, int(r["step"]))
        if "elapsed" in r:
            out["minutes"] = max(out["minutes"] or 0.0, float(r["elapsed"]) / 60.0)
        for key in ("elbo", "num_objects", "sacc"):
            if key in r:
                out[key] = float(r[key])
        if "sacc_lo" in r and "sacc_hi" in r:
            out["sacc_ci95"] = [float(r["sacc_lo"]), float(r["sacc_hi"])]
    return out


def sacc_at(records: Records, minutes: Sequence[float]) -> list[dict[str, Any] | None]:
    """Time to quality: for each wall-clock time in ``minutes``, the last S-Acc judged at or
    before it, ``{"minutes", "step", "sacc", "sacc_ci95", "judge_n", "ended"}`` (``minutes``
    the time it was judged at; ``ended`` True where the run's records stop before that time, so
    the value is the run's last), or None where nothing had been judged by then."""
    judged = sorted(((float(r["elapsed"]) / 60.0, r) for r in records
                     if "sacc" in r and "elapsed" in r), key=lambda tr: tr[0])
    reached = max((float(r["elapsed"]) / 60.0 for r in records if "elapsed" in r), default=0.0)
    out: list[dict[str, Any] | None] = []
    for m in minutes:
        before = [(t, r) for t, r in judged if t <= m]
        if not before:
            out.append(None)
            continue
        t, r = before[-1]
        ci = [float(r["sacc_lo"]), float(r["sacc_hi"])] if "sacc_lo" in r else None
        out.append({"minutes": t, "step": int(r["step"]), "sacc": float(r["sacc"]),
                    "sacc_ci95": ci, "judge_n": r.get("judge_n"), "ended": reached < m})
    return out


def learning_curves(runs: Mapping[str, Records], keys: Sequence[str] = ("sacc", "elbo"),
                    path: str | Path | None = None,
                    panel_size: tuple[int, int] = (560, 380), x: str = "minutes") -> np.ndarray:
    """One panel per metric ``key`` (see :data:`PANELS`) against wall-clock minutes (or the
    training step, ``x="step"``), one line per run (``{label: records}``), side by side, all on
    one x axis from 0; uint8 ``[H, W, 3]``, written to ``path``."""
    unknown = [k for k in keys if k not in PANELS]
    if unknown:
        raise GNMError(f"no learning-curve panel for {', '.join(unknown)}; known: "
                       f"{', '.join(PANELS)}.")
    if not runs:
        raise GNMError("learning_curves needs at least one run.")
    ends = [v for records in runs.values() for key in keys for v in curve(records, key, x)[0]]
    xlim = (0.0, max(ends)) if ends and max(ends) > 0 else None  # one time axis for all panels
    panels = []
    for key in keys:
        title, ylabel, ylim = PANELS[key]
        series = {label: curve(records, key, x) for label, records in runs.items()}
        panels.append(line_chart(series, title=title, xlabel=X_AXES[x][2],
                                 ylabel=ylabel, xlim=xlim, ylim=ylim, size=panel_size))
    return side_by_side(panels, path=path)
