"""Where a run reports: ``metrics.jsonl``, optional TensorBoard, a tqdm bar, PNG sample grids.

Only rank 0 makes a :class:`RunLogger` that writes; the other ranks get one with
``enabled=False`` whose methods do nothing, so the training loop needs no rank checks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gnm.io import atomic_write_bytes
from gnm.viz.grid import save_png

METRICS = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl``; a torn last line from a crash, or any other
    line that is not a JSON object, is skipped."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """Drop records after ``last_step`` (a resumed run logs those steps again)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return
    keep = [r for r in read_metrics(run_dir) if r.get("step", 0) <= last_step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


class RunLogger:
    """Writes metrics and images of one run (a no-op unless ``enabled``)."""

    def __init__(self, run_dir: str | Path, enabled: bool, tensorboard: bool, progress: bool,
                 total: int, initial: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("note: tensorboard is not installed, so metrics go to metrics.jsonl only "
                      "(pip install tensorboard to get TensorBoard logs).", file=sys.stderr)
            else:
                self.tb = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                        disable=not (enabled and progress))
        self._file = open(self.run_dir / METRICS, "a") if enabled else None  # noqa: SIM115

    def log(self, record: dict[str, Any]) -> None:
        """Append one metrics record (must contain ``step``) and mirror it to TensorBoard."""
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])

    def image(self, name: str, step: int, grid: np.ndarray) -> Path | None:
        """Save a uint8 ``[H, W, C]`` grid as ``samples/step_XXXXXXXX_{name}.png`` and to TB."""
        if not self.enabled:
            return None
        path = self.run_dir / "samples" / f"step_{step:08d}_{name}.png"
        save_png(grid, path)
        if self.tb is not None:
            self.tb.add_image(name, grid, step, dataformats="HWC")
        return path

    def advance(self, postfix: dict[str, float]) -> None:
        """One step done: move the bar and show ``postfix``."""
        if self.enabled:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None
