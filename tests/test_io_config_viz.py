"""Atomic writes, image grids and config overrides."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gnm.config import Config, DataConfig, set_override, to_dict
from gnm.data.scenes import paste_fields
from gnm.errors import GNMError
from gnm.io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    emit_report,
)
from gnm.viz.grid import make_grid, save_png, to_uint8


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(p):
        p.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_emit_report_prints_and_writes_json_and_markdown(tmp_path, capsys):
    emit_report({"a": 1}, "| x |\n|---|", None, "r", "Title")
    assert capsys.readouterr().out == '{\n "a": 1\n}\n| x |\n|---|\n'
    assert not list(tmp_path.iterdir())
    emit_report({"a": 1}, "| x |", tmp_path / "d", "r", "Title")
    assert json.loads((tmp_path / "d" / "r.json").read_text()) == {"a": 1}
    assert (tmp_path / "d" / "r.md").read_text() == "Title\n\n| x |\n"


def test_atomic_write_mode_and_json(tmp_path):
    atomic_write_json(tmp_path / "a" / "x.json", {"k": [1, 2]})
    assert (tmp_path / "a" / "x.json").read_text() == '{\n "k": [\n  1,\n  2\n ]\n}\n'
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a" / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_make_grid_layout_by_hand():
    imgs = torch.zeros(3, 1, 2, 2)
    imgs[1] = 1.0
    imgs[2, 0, 0, 1] = 0.5
    grid = make_grid(imgs, nrow=2, pad=1, pad_value=7)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1, 1)
    expected = np.full((7, 7), 7, np.uint8)
    expected[1:3, 1:3] = 0
    expected[1:3, 4:6] = 255
    expected[4:6, 1:3] = 0
    expected[4, 2] = 128  # 0.5 -> round(127.5) = 128
    assert np.array_equal(grid[..., 0], expected)


def test_to_uint8_and_save_png(tmp_path):
    arr = np.zeros((2, 4, 5), np.uint8)
    assert to_uint8(arr).shape == (2, 4, 5, 1)
    x = torch.rand(1, 3, 4, 5)
    out = to_uint8(x)
    assert out.shape == (1, 4, 5, 3)
    assert np.array_equal(out[0, 1, 2], (x[0, :, 1, 2].numpy() * 255 + 0.5).astype(np.uint8))
    save_png(out[0], tmp_path / "c.png")
    assert np.array_equal(np.array(Image.open(tmp_path / "c.png")), out[0])


def test_overrides_and_round_trip():
    cfg = Config()
    set_override(cfg, "data.size=64")
    set_override(cfg, "data.dataset=mnist10")
    set_override(cfg, "data.data_dir=null")
    assert cfg.data == DataConfig(dataset="mnist10", size=64)
    set_override(cfg, "train.lr=3e-4")  # YAML would read this as a string
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)
    assert Config.from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("assignment,match", [
    ("data.size", "section.key=value"),
    ("data.colour=3", "unknown key 'data.colour'"),
    ("nope.size=3", "unknown key 'nope'"),
    ("data.size.x=3", "not a section"),
    ("data=3", "is a section"),
    ("data.size=big", "takes a number"),
])
def test_override_errors(assignment, match):
    with pytest.raises(GNMError, match=match):
        set_override(Config(), assignment)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(GNMError, match="unknown config key 'data.bogus'"):
        Config.from_dict({"data": {"bogus": 1}})


@pytest.mark.parametrize("compress", [False, True])
def test_atomic_write_npz_keeps_the_name(tmp_path, compress):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    atomic_write_npz(tmp_path / "x.npz", compress=compress, images=a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]
    with np.load(tmp_path / "x.npz") as z:
        assert np.array_equal(z["images"], a)


def test_paste_fields_by_hand():
    a = np.array([[10, 0], [0, 200]], np.uint8)
    b = np.array([[50, 50], [50, 50]], np.uint8)
    img = paste_fields(4, [(a, 0, 0), (b, 1, 1)])
    expected = np.zeros((4, 4), np.uint8)
    expected[0, 0] = 10
    expected[1:3, 1:3] = 50
    expected[1, 1] = 200  # overlap: the brighter pixel wins
    assert np.array_equal(img, expected)
