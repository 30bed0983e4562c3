"""The one exception type for errors a user can act on, and the sentences for failed writes.

:func:`os_error_message` turns an ``OSError`` (disk full, read-only file system, no permission,
a path through a regular file) into one sentence that names the path and what to do;
:func:`write_failed` wraps it in a :class:`GNMError`. The CLI uses it as a last resort for any
``OSError`` that reaches it, :func:`gnm.io.atomic_write` for every file it writes.
"""

from __future__ import annotations

import errno
from pathlib import Path


class GNMError(Exception):
    """An error with one clear sentence saying what was wrong and what to do.

    The CLI prints its message (no traceback) and exits with status 2.
    """


#: errno -> (what happened, what to do); the sentence is "cannot write PATH: WHAT; DO."
_WRITE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some disk space or choose a folder on "
                   "another disk, then rerun"),
    errno.EROFS: ("the file system is read-only", "choose a writable output folder"),
    errno.EACCES: ("permission denied", "choose a folder you may write to or fix its "
                   "permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you may write to or fix its "
                  "permissions"),
    errno.EFBIG: ("the file is too large for the file system", "choose a folder on another "
                  "disk"),
}
_QUOTA = getattr(errno, "EDQUOT", None)
if _QUOTA is not None:
    _WRITE_ERRNOS[_QUOTA] = ("the disk quota is exhausted", "free some space or choose a "
                             "folder on another disk, then rerun")

#: Marks of the RuntimeError torch.save raises when the file cannot be written (disk full).
TORCH_WRITE_MARKS = ("inline_container", "PytorchStreamWriter failed", "file write failed")


def _file_in_the_way(path: Path) -> Path | None:
    """The first existing non-folder among ``path``'s parents (the reason for ENOTDIR)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def os_error_message(exc: OSError, path: str | Path | None = None) -> str:
    """One sentence for ``exc``, naming ``path`` (default: the path in the exception)."""
    where = Path(path) if path is not None else (Path(exc.filename) if exc.filename else None)
    shown = str(where) if where is not None else "a file"
    if exc.errno in _WRITE_ERRNOS:
        what, do = _WRITE_ERRNOS[exc.errno]
        return f"cannot write {shown}: {what}; {do}."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and where is not None:
        blocker = _file_in_the_way(where)
        if blocker is not None:
            return (f"cannot write {shown}: {blocker} is a file, not a folder; choose another "
                    "output path (or move that file away).")
        if where.exists() and not where.is_dir():
            return (f"cannot write into {shown}: it is a file, not a folder; choose another "
                    "output path (or move that file away).")
    if exc.errno == errno.EISDIR:
        return f"cannot write {shown}: it is a folder; give a file name instead."
    reason = exc.strerror.lower() if exc.strerror else (str(exc) or type(exc).__name__)
    return f"cannot use {shown}: {reason}; check the path and rerun."


def write_failed(path: str | Path, exc: OSError) -> GNMError:
    """A :class:`GNMError` saying that writing ``path`` failed, and why (see above)."""
    return GNMError(os_error_message(exc, path))


def is_torch_write_failure(exc: BaseException) -> bool:
    """True for the ``RuntimeError`` torch.save raises when its file cannot be written."""
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in TORCH_WRITE_MARKS)


def torch_write_failed(path: str | Path) -> GNMError:
    """The :class:`GNMError` for a torch.save of ``path`` that failed (almost always: disk
    full)."""
    return GNMError(f"cannot write {path}: torch.save failed part-way (the disk is probably "
                    "full); free some disk space or choose a folder on another disk, then rerun.")
