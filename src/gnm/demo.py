"""The README's demo: what the project can show on the default embedded setup.

Until a trained model ships, the demo fetches and verifies MNIST, generates scenes of each
dataset on the fly, and writes a preview grid per dataset plus a small HTML page.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from gnm.data.mnist import load_mnist
from gnm.data.scenes import DATASETS, SceneGenerator
from gnm.io import atomic_write_bytes
from gnm.viz.grid import make_grid, save_png


def run_demo(out: str | Path = "out/demo", data_dir: str | None = None, size: int = 128,
             n: int = 16, seed: int = 0) -> Path:
    """Write ``out/<dataset>.png`` (``n`` test scenes each) and ``out/index.html``; return it."""
    out = Path(out)
    mnist = load_mnist(data_dir)
    rows = []
    for name in DATASETS:
        gen = SceneGenerator(name, "test", size, seed, mnist=mnist)
        images, annotations = gen.batch(range(n))
        save_png(make_grid(images, nrow=int(np.ceil(np.sqrt(n)))), out / f"{name}.png")
        rules = sorted({a["rule"] for a in annotations})
        rows.append(f"<h2>{html.escape(name)}</h2><p>{n} test scenes, {size}px, rules: "
                    f"{', '.join(rules)}</p><img src='{name}.png' style='image-rendering:"
                    "pixelated;width:512px'>")
    page = ("<!doctype html><meta charset='utf-8'><title>gnm demo</title>"
            "<h1>gnm: scene datasets</h1>" + "".join(rows))
    atomic_write_bytes(out / "index.html", page.encode())
    return out / "index.html"
