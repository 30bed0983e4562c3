"""Export scenes to disk as checksummed shards, and read them back as a ``Dataset``.

Layout of an export folder ``DIR``::

    DIR/manifest.json        parameters, finished shards (file, range, sha256), complete flag
    DIR/shards/00000.npz     format npz: images uint8 [n, S, S, C], boxes, classes, annotations
    DIR/shards/00000.json    format png: the shard's annotations and each PNG's sha256
    DIR/images/000000.png    format png: one PNG per scene (grayscale; RGB for arrow)
    DIR/annotations.json     every scene's ground truth (written when the export completes;
                             Arrow Room: ``{"scenes": [{"objects": [...], "target": ...}]}``,
                             :func:`gnm.data.arrow_room.scene_record`)
    DIR/preview.png          an 8×8 grid of the first scenes

Every file is written to a temporary name and renamed, and the manifest lists a shard only after
the shard is on disk, so an interrupted export never leaves a shard that looks complete; running
the same command again resumes from the last finished shard. A rerun also checks every listed
shard (and PNG) against its sha256, complete export or not, and makes again only what is
missing or damaged (:class:`ExportReport` lists it).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gnm.data.mnist import sha256_file
from gnm.data.registry import check_options, dataset_spec
from gnm.data.scenes import (
    MAX_OBJECTS,
    SceneGenerator,
    check_dataset,
    check_size,
    check_split,
    target_tensors,
)
from gnm.errors import GNMError
from gnm.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    check_writable,
    remove_stale_temporaries,
)
from gnm.viz.grid import make_grid, save_png

FORMATS = ("npz", "png")
MANIFEST = "manifest.json"
STORE_VERSION = 1
_PARAM_KEYS = ("dataset", "split", "n", "size", "seed", "format", "shard_size")


def _arrays(images: np.ndarray, annotations: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Fixed-size arrays of a shard (padding: boxes 0, classes/quadrants -1)."""
    n = len(annotations)
    boxes = np.zeros((n, MAX_OBJECTS, 4), np.int32)
    classes = np.full((n, MAX_OBJECTS), -1, np.int16)
    quadrants = np.full((n, MAX_OBJECTS), -1, np.int8)
    counts = np.zeros(n, np.int8)
    for i, a in enumerate(annotations):
        k = len(a["classes"])
        counts[i] = k
        boxes[i, :k] = a["boxes"]
        classes[i, :k] = a["classes"]
        quadrants[i, :k] = a["quadrants"]
    return {
        "images": images[..., None] if images.ndim == 3 else images, "boxes": boxes,
        "classes": classes,
        "quadrants": quadrants, "n_objects": counts,
        "indices": np.array([a["index"] for a in annotations], np.int64),
        "annotations_json": np.array(json.dumps(annotations)),
    }


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _write_shard(out: Path, fmt: str, shard: int, start: int, images: np.ndarray,
                 annotations: list[dict[str, Any]]) -> dict[str, Any]:
    """Write one shard; return its manifest entry."""
    if fmt == "npz":
        path = out / "shards" / f"{shard:05d}.npz"
        atomic_write_npz(path, **_arrays(images, annotations))
    else:
        hashes = []
        for k, image in enumerate(images):
            data = _png_bytes(image)
            atomic_write_bytes(out / "images" / f"{start + k:06d}.png", data)
            hashes.append(hashlib.sha256(data).hexdigest())
        path = out / "shards" / f"{shard:05d}.json"
        atomic_write_json(path, {"annotations": annotations, "png_sha256": hashes})
    return {"file": str(path.relative_to(out)), "start": start, "count": len(annotations),
            "sha256": sha256_file(path)}


def _load_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("version") != STORE_VERSION or not isinstance(manifest.get("shards"),
                                                                       list):
            raise ValueError("unknown layout")
        for entry in manifest["shards"]:
            if not (isinstance(entry, dict) and isinstance(entry.get("file"), str)
                    and all(isinstance(entry.get(k), int) for k in ("start", "count"))
                    and isinstance(entry.get("sha256"), str)):
                raise ValueError(f"bad shard entry {str(entry)[:60]}")
    except (ValueError, OSError) as exc:
        raise GNMError(f"{path} is unreadable or not a gnm manifest ({exc}); delete the folder "
                       "and export again.") from exc
    _check_scene_version(out, manifest)
    return manifest


def _check_scene_version(out: Path, manifest: dict[str, Any]) -> None:
    """A GNMError if the export holds scenes of another version than its dataset makes now
    (``scene_version``; exports without it hold version 1)."""
    name = manifest.get("dataset")
    if not isinstance(name, str):
        return
    try:
        now = dataset_spec(name).version
    except GNMError:
        return  # an unknown dataset is reported where the export is used
    held = manifest.get("scene_version", 1)
    if held != now:
        raise GNMError(f"{out} holds {name} scenes of version {held}, but this gnm makes version "
                       f"{now} (the generator changed); delete the folder and export again.")


@dataclass
class ExportReport:
    """What one :func:`make_scenes` call did to an export folder."""

    manifest: Path  # the manifest's path
    n: int  # scenes in the export
    written: int  # scenes generated and written by this call
    rebuilt: list[str] = field(default_factory=list)  # damaged files made again, with the reason
    removed_tmp: list[Path] = field(default_factory=list)  # leftovers of writes killed midway


def _shard_damage(out: Path, fmt: str, entry: dict[str, Any]) -> str | None:
    """Why the shard of a manifest ``entry`` is unusable (None: it and its PNGs are intact)."""
    path = out / entry["file"]
    if not path.is_file():
        return "missing"
    if sha256_file(path) != entry["sha256"]:
        return "truncated or changed: sha256 mismatch"
    if fmt == "png":
        try:
            hashes = json.loads(path.read_text())["png_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return "unreadable"
        for k, digest in enumerate(hashes):
            png = out / "images" / f"{entry['start'] + k:06d}.png"
            if not png.is_file():
                return f"image {png.name} missing"
            if sha256_file(png) != digest:
                return f"image {png.name} truncated or changed"
    return None


def _finish_damage(out: Path, manifest: dict[str, Any]) -> list[str]:
    """The files written when an export completes that are missing or differ."""
    ann = out / "annotations.json"
    bad = []
    if not ann.is_file() or sha256_file(ann) != manifest.get("annotations_sha256"):
        bad.append(f"{ann.name} ({'missing' if not ann.is_file() else 'sha256 mismatch'})")
    if not (out / "preview.png").is_file():
        bad.append("preview.png (missing)")
    return bad


def export_scenes(dataset: str, split: str, n: int, out: str | Path, **kwargs: Any) -> Path:
    """:func:`make_scenes` returning only the manifest path."""
    return make_scenes(dataset, split, n, out, **kwargs).manifest


def make_scenes(dataset: str, split: str, n: int, out: str | Path, *, size: int = 128,
                seed: int = 0, fmt: str = "npz", shard_size: int = 1000,
                data_dir: str | None = None, mnist: Any = None,
                progress: bool = True, colours: Sequence[str] = (),
                shapes: Sequence[str] = ()) -> ExportReport:
    """Generate scenes ``0..n-1`` of a dataset/split and write them to ``out``; resumable.

    A rerun verifies what is there (every shard's, and every PNG's, sha256 against the
    manifest, also when the export is complete) and writes again only what is missing or
    damaged; the returned :class:`ExportReport` says what was rebuilt. A folder that already
    holds a different export, or unrelated files, is refused rather than mixed. ``colours`` and
    ``shapes`` (Arrow Room only: names to draw from) are recorded in the manifest when set.
    """
    if dataset != "arrow":
        check_dataset(dataset)
    check_split(split)
    check_size(size)
    if not isinstance(n, int) or n <= 0:
        raise GNMError(f"--n must be a positive number of scenes, got {n!r}.")
    if fmt not in FORMATS:
        raise GNMError(f"unknown format {fmt!r}; choose npz or png.")
    if shard_size <= 0:
        raise GNMError(f"shard size must be positive, got {shard_size}.")
    out = Path(out)
    options = {"colours": list(colours), "shapes": list(shapes)}
    check_options(dataset, options)
    params = {"dataset": dataset, "split": split, "n": n, "size": size, "seed": seed,
              "format": fmt, "shard_size": shard_size, **{k: v for k, v in options.items() if v}}
    manifest = _load_manifest(out)
    rebuilt: list[str] = []
    removed: list[Path] = []
    if manifest is None:
        if out.exists() and any(out.iterdir()):
            raise GNMError(f"output folder {out} is not empty and holds no {MANIFEST}; choose an "
                           "empty or new --out.")
        manifest = {"version": STORE_VERSION, **params,
                    "scene_version": dataset_spec(dataset).version, "complete": False,
                    "shards": []}
    else:
        keys = _PARAM_KEYS + tuple(options)
        theirs = {k: manifest.get(k, [] if k in options else None) for k in keys}
        asked = {**params, **options}
        if theirs != asked:
            diff = ", ".join(f"{k}={theirs[k]!r} (asked {asked[k]!r})"
                             for k in keys if theirs[k] != asked[k])
            raise GNMError(f"{out} already holds a different export ({diff}); choose another "
                           "--out or delete that folder.")
        removed = remove_stale_temporaries(out, out / "shards", out / "images")
        # Keep only shards that are intact (checked even when the export is complete); the
        # others, and any range no shard covers, are made again.
        listed, kept = {s["start"] for s in manifest["shards"]}, []
        for entry in manifest["shards"]:
            why = _shard_damage(out, fmt, entry)
            if why is None:
                kept.append(entry)
            else:
                rebuilt.append(f"{entry['file']} ({why})")
        if manifest["complete"]:
            ext = "npz" if fmt == "npz" else "json"
            rebuilt += [f"shards/{i:05d}.{ext} (not in {MANIFEST})"
                        for i, start in enumerate(range(0, n, shard_size)) if start not in listed]
            finish = _finish_damage(out, manifest)
            if not rebuilt and not finish:
                return ExportReport(out / MANIFEST, n, 0, [], removed)
            rebuilt += finish
        manifest["shards"], manifest["complete"] = kept, False
    check_writable(out)
    # Build the generator first: its checks (size, palette names) must fail before a manifest
    # exists, or the corrected rerun would be refused as "a different export".
    if dataset == "arrow":
        from gnm.data.arrow_room import ArrowRoomGenerator

        gen: Any = ArrowRoomGenerator(split, size, seed, colours=colours, shapes=shapes)
    else:
        gen = SceneGenerator(dataset, split, size, seed, mnist=mnist, data_dir=data_dir)
    atomic_write_json(out / MANIFEST, manifest)  # a crash from here on leaves it incomplete
    done = {s["start"] for s in manifest["shards"]}
    starts = range(0, n, shard_size)
    bar = tqdm(total=n, desc=f"{dataset}/{split}", unit="scene", disable=not progress)
    bar.update(sum(s["count"] for s in manifest["shards"]))
    written = 0
    for shard, start in enumerate(starts):
        if start in done:
            continue
        images, annotations = gen.batch(range(start, min(start + shard_size, n)))
        manifest["shards"].append(_write_shard(out, fmt, shard, start, images, annotations))
        manifest["shards"].sort(key=lambda s: s["start"])
        atomic_write_json(out / MANIFEST, manifest)
        bar.update(len(annotations))
        written += len(annotations)
    bar.close()
    # Finish: the full annotation list, a preview grid, then mark complete (last).
    store = SceneShards(out, verify=False, _allow_incomplete=True)
    if dataset == "arrow":  # the interface contract's form (shared/DESIGN.md)
        from gnm.data.arrow_room import scene_record

        atomic_write_json(out / "annotations.json",
                          {"scenes": [scene_record(a) for a in store.annotations]})
    else:
        atomic_write_json(out / "annotations.json", store.annotations)
    first = np.stack([store.image_uint8(i) for i in range(min(64, n))])
    save_png(make_grid(first, nrow=8), out / "preview.png")
    manifest["complete"] = True
    manifest["annotations_sha256"] = sha256_file(out / "annotations.json")
    atomic_write_json(out / MANIFEST, manifest)
    return ExportReport(out / MANIFEST, n, written, rebuilt, removed)


class SceneShards(torch.utils.data.Dataset):
    """Scenes exported by :func:`export_scenes`, read back as a ``Dataset``.

    Items match :class:`gnm.data.scenes.SceneDataset`: ``image`` float32 ``[1, S, S]`` in
    [0, 1] plus padded target tensors. With ``verify`` every shard (and, for PNG exports, every
    image) is checked against the manifest's sha256; a mismatch raises :class:`GNMError`.
    """

    def __init__(self, folder: str | Path, verify: bool = True,
                 _allow_incomplete: bool = False) -> None:
        self.folder = Path(folder)
        manifest = _load_manifest(self.folder)
        if manifest is None:
            raise GNMError(f"{self.folder} has no {MANIFEST}; export scenes there first with "
                           "`gnm data make`.")
        if not manifest["complete"] and not _allow_incomplete:
            raise GNMError(f"the export in {self.folder} is incomplete; run the same "
                           "`gnm data make` command again to finish it.")
        self.manifest = manifest
        self.format = manifest["format"]
        self.annotations: list[dict[str, Any]] = []
        self._images: list[np.ndarray] = []
        self._png_hashes: list[str] = []
        self._verify = verify
        for entry in manifest["shards"]:
            path = self.folder / entry["file"]
            if not path.exists():
                raise GNMError(f"shard {path} is missing; run the same `gnm data make` command "
                               "again to rebuild it.")
            if verify and sha256_file(path) != entry["sha256"]:
                raise GNMError(f"shard {path} does not match its checksum in {MANIFEST} "
                               "(truncated or tampered); delete it and run the same `gnm data "
                               "make` command again to rebuild it.")
            if self.format == "npz":
                try:
                    with np.load(path, allow_pickle=False) as z:
                        arr = z["images"]
                        self._images.append(arr[..., 0] if arr.shape[-1] == 1 else arr)
                        self.annotations.extend(json.loads(str(z["annotations_json"])))
                except (OSError, ValueError, KeyError) as exc:
                    raise GNMError(f"shard {path} cannot be read ({exc}); delete it and run the "
                                   "same `gnm data make` command again.") from exc
            else:
                chunk = json.loads(path.read_text())
                self.annotations.extend(chunk["annotations"])
                self._png_hashes.extend(chunk["png_sha256"])
        if self.format == "npz":
            self._array = np.concatenate(self._images) if self._images else np.zeros((0,))
            self._images = []
        if verify and manifest["complete"] and "annotations_sha256" in manifest:
            ann = self.folder / "annotations.json"
            if not ann.exists() or sha256_file(ann) != manifest["annotations_sha256"]:
                raise GNMError(f"{ann} is missing or does not match {MANIFEST}; run the same "
                               "`gnm data make` command again after deleting it.")

    def __len__(self) -> int:
        return len(self.annotations)

    def image_uint8(self, index: int) -> np.ndarray:
        """Scene ``index`` as uint8 ``[S, S]`` (MNIST scenes) or ``[S, S, 3]`` (Arrow Room)."""
        if self.format == "npz":
            return self._array[index]
        path = self.folder / "images" / f"{index:06d}.png"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise GNMError(f"image {path} is missing; run the same `gnm data make` command "
                           "again.") from exc
        if self._verify and hashlib.sha256(data).hexdigest() != self._png_hashes[index]:
            raise GNMError(f"image {path} does not match its checksum (tampered or truncated); "
                           "delete it with its shard json and run `gnm data make` again.")
        mode = "RGB" if self.manifest["dataset"] == "arrow" else "L"
        return np.array(Image.open(io.BytesIO(data)).convert(mode))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.array(self.image_uint8(index))).float() / 255.0
        image = image.permute(2, 0, 1) if image.ndim == 3 else image.unsqueeze(0)
        return {"image": image, **target_tensors(self.annotations[index])}
