"""Read a set of images to evaluate: an ``.npz`` with key ``images``, a folder of PNGs, or the
folder ``gnm data make`` writes (its scenes, never its ``preview.png``)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from gnm.errors import GNMError

#: Files of a ``gnm data make`` export that mark the folder as one (see gnm.data.store).
_EXPORT_MARKS = ("manifest.json", "shards")


def load_images(path: str | Path) -> np.ndarray:
    """Images ``[N, H, W, C]`` (uint8, or floats in [0, 1]) from ``path``; see
    :func:`read_images`."""
    return read_images(path)[0]


def read_images(path: str | Path) -> tuple[np.ndarray, str]:
    """Images ``[N, H, W, C]`` (uint8, or finite floats in [0, 1]) from ``path``, and a phrase
    saying what was read (e.g. ``"24 images of 64 px from x.npz"``).

    ``path`` is an ``.npz`` file with an ``images`` array (``[N, H, W, C]``, ``[N, H, W]`` or
    ``[N, C, H, W]`` with C in 1 or 3); a folder that ``gnm data make`` wrote (its scenes are
    read through its manifest and checksums, for both formats); or a folder of ``*.png`` files
    (or such a folder's ``images/`` subfolder), read in name order.

    Raises:
        GNMError: for a missing path, a truncated or foreign ``.npz``, a file that is not a PNG,
            images of mixed sizes or shapes, and NaN/infinite or out-of-range float pixels.
    """
    path = Path(path)
    if path.is_dir() and any((path / m).exists() for m in _EXPORT_MARKS):
        images, source = _read_export(path)
    elif path.is_dir():
        images, source = _read_png_folder(path)
    elif path.is_file():
        images, source = _read_npz(path), str(path)
    else:
        raise GNMError(f"{path} does not exist; pass an .npz file or a folder of PNGs.")
    images = _to_nhwc(images, path)
    if len(images) == 0:
        raise GNMError(f"{source} holds no images (its 'images' array is empty); pass at least "
                       "one image (20 or more for a useful confidence interval).")
    return images, f"{len(images)} images of {images.shape[1]} px from {source}"


def _read_export(folder: Path) -> tuple[np.ndarray, str]:
    from gnm.data.store import MANIFEST, SceneShards

    if not (folder / MANIFEST).is_file():
        raise GNMError(f"{folder} looks like a `gnm data make` export but has no {MANIFEST}; "
                       "run the same `gnm data make` command again to finish it.")
    shards = SceneShards(folder)
    if len(shards) == 0:
        raise GNMError(f"the export in {folder} holds no scenes; export some with `gnm data "
                       "make --n N`.")
    images = np.stack([shards.image_uint8(i) for i in range(len(shards))])
    m = shards.manifest
    where = "images/*.png" if m["format"] == "png" else "shards/*.npz"
    return images, f"the {m['dataset']}/{m['split']} export in {folder} ({where})"


def _read_png_folder(path: Path) -> tuple[np.ndarray, str]:
    folder = path / "images" if (path / "images").is_dir() else path
    files = sorted(folder.glob("*.png"))
    if not files:
        raise GNMError(f"{folder} holds no .png files; pass a folder of PNG images or an "
                       ".npz file with an 'images' array.")
    arrays = [_read_png(f) for f in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise GNMError(f"the PNGs in {folder} have different shapes {sorted(shapes)[:3]}; "
                       "all images must have one size.")
    return np.stack(arrays), f"{folder} (*.png)"


def _read_png(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as im:
            if im.format != "PNG":
                raise GNMError(f"{file} is a {im.format} file, not a PNG; convert it to PNG or "
                               "move it out of the folder.")
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("L" if len(im.getbands()) == 1 else "RGB")
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as exc:  # PIL: not an image, truncated, broken
        raise GNMError(f"{file} is not a readable PNG image ({exc}); replace it or move it out "
                       "of the folder.") from exc


_NPZ_FAILURES = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _read_npz(path: Path) -> np.ndarray:
    def unreadable(exc: BaseException) -> GNMError:
        return GNMError(f"{path} is not a readable .npz file (truncated or not an archive: "
                        f"{exc}); write it again, e.g. with gnm sample.")

    try:
        z = np.load(path, allow_pickle=False)
    except _NPZ_FAILURES as exc:
        raise unreadable(exc) from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise GNMError(f"{path} is a single .npy array, not an .npz archive; save it with "
                       "np.savez(path, images=array).")
    with z:
        if "images" not in z:
            raise GNMError(f"{path} has no 'images' array (it has {', '.join(z.files)}); "
                           "save the images under the key 'images'.")
        try:
            return z["images"]
        except _NPZ_FAILURES as exc:
            raise unreadable(exc) from exc


def _to_nhwc(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.shape[1] != images.shape[2]:
        raise GNMError(f"images from {path} have shape {images.shape}; expected square "
                       "[N, H, W, C] with C = 1 or 3.")
    if images.shape[-1] == 4:
        images = images[..., :3]
    if images.dtype == np.uint8:
        return images
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
        raise GNMError(f"images from {path} have dtype {images.dtype}; save uint8 or floats "
                       "in [0, 1].")
    images = images.astype(np.float32)
    finite = np.isfinite(images).reshape(len(images), -1).all(1)
    if not finite.all():
        raise GNMError(f"{int((~finite).sum())} of {len(images)} images from {path} contain NaN "
                       f"or infinite pixels (the first is image {int(np.argmin(finite))}); "
                       "drop or fix them before judging.")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise GNMError(f"float images from {path} must lie in [0, 1] (found "
                       f"{images.min():.3g}..{images.max():.3g}); save uint8 or scale them.")
    return images
