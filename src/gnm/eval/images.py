"""Read a set of images to evaluate: an ``.npz`` with key ``images`` or a folder of PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gnm.errors import GNMError


def load_images(path: str | Path) -> np.ndarray:
    """Images ``[N, H, W, C]`` (uint8, or floats in [0, 1]) from ``path``.

    ``path`` is an ``.npz`` file with an ``images`` array (``[N, H, W, C]``, ``[N, H, W]`` or
    ``[N, C, H, W]`` with C in 1 or 3), or a folder of ``*.png`` files (or such a folder's
    ``images/`` subfolder, as ``gnm data make --format png`` writes), read in name order.
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "images" if (path / "images").is_dir() else path
        files = sorted(folder.glob("*.png"))
        if not files:
            raise GNMError(f"{folder} holds no .png files; pass a folder of PNG images or an "
                           ".npz file with an 'images' array.")
        arrays = [np.array(Image.open(f)) for f in files]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise GNMError(f"the PNGs in {folder} have different shapes {sorted(shapes)[:3]}; "
                           "all images must have one size.")
        images = np.stack(arrays)
    elif path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if "images" not in z:
                    raise GNMError(f"{path} has no 'images' array (it has {', '.join(z.files)});"
                                   " save the images under the key 'images'.")
                images = z["images"]
        except (OSError, ValueError) as exc:
            raise GNMError(f"{path} is not a readable .npz file ({exc}).") from exc
    else:
        raise GNMError(f"{path} does not exist; pass an .npz file or a folder of PNGs.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.shape[1] != images.shape[2]:
        raise GNMError(f"images from {path} have shape {images.shape}; expected square "
                       "[N, H, W, C] with C = 1 or 3.")
    if images.shape[-1] == 4:
        images = images[..., :3]
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
        if images.min() < 0 or images.max() > 1:
            raise GNMError(f"float images from {path} must lie in [0, 1] (found "
                           f"{images.min():.3g}..{images.max():.3g}); save uint8 or scale them.")
    return images
