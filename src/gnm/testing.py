"""Helpers for tests and benchmarks: simulate failing writes, and digits that need no download.

``break_writes`` makes writes under one folder fail as a read-only folder or a full disk would
(useful where the machine cannot make them fail: as root, ``chmod`` does not stop writes);
``synthetic_mnist`` gives MNIST-shaped digits without the MNIST files.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def break_writes(patch: Callable[[Any, str, Any], None], root: str | Path, code: int) -> None:
    """Make writes under ``root`` fail with errno ``code``.

    A read-only folder (``EROFS``, ``EACCES``, ...) refuses to create files and folders; a
    full disk (``ENOSPC``) fails once data is written, i.e. when :func:`gnm.io.atomic_write`
    renames its finished temporary file into place. ``patch(obj, name, value)`` sets an
    attribute until the caller undoes it (e.g. pytest's ``monkeypatch.setattr``); it is applied
    to ``tempfile.mkstemp``, ``os.replace`` and ``os.mkdir``.
    """
    root = Path(os.path.abspath(root))
    real_mkstemp, real_replace, real_mkdir = tempfile.mkstemp, os.replace, os.mkdir

    def under(path: Any) -> bool:
        return Path(os.path.abspath(path)).is_relative_to(root)

    def fail(path: Any):
        raise OSError(code, os.strerror(code), str(path))

    def mkstemp(*args: Any, **kwargs: Any):
        folder = kwargs.get("dir") or (args[2] if len(args) > 2 else None)
        if code != errno.ENOSPC and folder is not None and under(folder):
            fail(folder)
        return real_mkstemp(*args, **kwargs)

    def replace(src: Any, dst: Any, **kwargs: Any):
        if under(dst):
            fail(dst)
        return real_replace(src, dst, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any):
        if code != errno.ENOSPC and under(path) and not os.path.isdir(path):
            fail(path)
        return real_mkdir(path, *args, **kwargs)

    patch(tempfile, "mkstemp", mkstemp)
    patch(os, "replace", replace)
    patch(os, "mkdir", mkdir)


def synthetic_mnist(n_train: int = 600, n_test: int = 200):
    """A :class:`gnm.data.mnist.MNIST` of stand-in digits: labels ``i % 10``, each a centred
    square (side 10-16 px) whose grey level ``100 + 15·class`` encodes its class."""
    from gnm.data.mnist import MNIST

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, c in enumerate(labels):
            side = 10 + 2 * (i // 10 % 4)
            lo = 14 - side // 2
            images[i, lo:lo + side, lo:lo + side] = 100 + 15 * int(c)
        return images, labels

    (tr, trl), (te, tel) = part(n_train), part(n_test)
    return MNIST(train_images=tr, train_labels=trl, test_images=te, test_labels=tel)
