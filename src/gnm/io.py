"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A reader (or an interrupted run) therefore never sees a half-written file under the final name.
A write that fails (disk full, read-only folder, a path through a regular file, torch.save
giving up part-way) leaves no temporary file behind and raises a :class:`gnm.errors.GNMError`
naming the target path and what to do.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gnm.errors import is_torch_write_failure, torch_write_failed, write_failed


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` to produce the file, then atomically rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_failed(path, exc) from exc
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_failed(path, exc) from exc
        if is_torch_write_failure(exc):
            raise torch_write_failed(path) from exc
        raise


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove that a file can be written in it (a temporary
    file, removed at once), so that a command fails before its work rather than after it.

    Raises:
        GNMError: naming the folder and what to do (read-only, no permission, disk full, a
            regular file in the way).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise write_failed(folder, exc) from exc
    return folder


def remove_stale_temporaries(*folders: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) that an :func:`atomic_write` killed midway
    (SIGKILL, power loss) left in ``folders`` (not recursive); return the paths removed."""
    removed = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_npz(path: str | Path, compress: bool = False, **arrays: Any) -> None:
    """Write ``arrays`` as an ``.npz`` archive to ``path`` atomically (``np.savez`` is given a
    file object, since with a path it would append ``.npz`` to the temporary name)."""
    save = np.savez_compressed if compress else np.savez

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            save(f, **arrays)

    atomic_write(path, write)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def emit_report(result: Any, table: str, out: str | Path | None, name: str,
                header: str) -> None:
    """A benchmark's output: print ``result`` as indented JSON, then the Markdown ``table``; with
    ``out`` also write ``out/NAME.json`` (the result) and ``out/NAME.md`` (``header``, a blank
    line, the table), each atomically."""
    print(json.dumps(result, indent=1))
    print(table)
    if out:
        atomic_write_json(Path(out) / f"{name}.json", result)
        atomic_write_bytes(Path(out) / f"{name}.md", f"{header}\n\n{table}\n".encode())
