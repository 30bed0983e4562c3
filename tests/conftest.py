"""Shared test fixtures: fake MNIST digits that encode their class in their pixels."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (benchmarks are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module


def fake_digit(cls: int, variant: int) -> np.ndarray:
    """A 28×28 uint8 'digit': a square centred on the field, value 100 + 15·cls.

    The side (10, 12, 14 or 16 px, from ``variant``) varies so that digits differ; the square is
    exactly centred, so mirrored placements give exactly mirrored ink.
    """
    side = 10 + 2 * (variant % 4)
    img = np.zeros((28, 28), np.uint8)
    lo = 14 - side // 2
    img[lo:lo + side, lo:lo + side] = 100 + 15 * cls
    return img


def class_from_value(value: int) -> int:
    """Inverse of the fake digit's intensity code."""
    return round((int(value) - 100) / 15)


def make_fake_mnist(n_train: int = 600, n_test: int = 200) -> SimpleNamespace:
    """Fake MNIST arrays with labels ``i % 10`` (so every split has every class)."""

    def part(n: int, offset: int):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.stack([fake_digit(int(c), (i + offset) // 10) for i, c in enumerate(labels)])
        return images, labels

    tr_i, tr_l = part(n_train, 0)
    te_i, te_l = part(n_test, 7)
    return SimpleNamespace(train_images=tr_i, train_labels=tr_l, test_images=te_i,
                           test_labels=te_l)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (tiny models run fastest so, above all on a shared, busy
    CPU); modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fake_mnist() -> SimpleNamespace:
    return make_fake_mnist()


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (magic 0x0000080N, big-endian dims)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                      for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())
