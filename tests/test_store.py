"""Export -> load round trip, resumption after interruption, and refusal of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gnm import cli
from gnm.data import store
from gnm.data.scenes import SceneGenerator
from gnm.errors import GNMError


def _export(out, fake_mnist, **kw):
    args = {"size": 64, "seed": 2, "shard_size": 10, "mnist": fake_mnist, "progress": False}
    args.update(kw)
    return store.export_scenes(args.pop("dataset", "mnist4_10"), "train", args.pop("n", 25), out,
                               **args)


@pytest.mark.parametrize("fmt", ["npz", "png"])
def test_round_trip_is_identical(tmp_path, fake_mnist, fmt):
    _export(tmp_path / "d", fake_mnist, fmt=fmt)
    loaded = store.SceneShards(tmp_path / "d")
    gen = SceneGenerator("mnist4_10", "train", 64, seed=2, mnist=fake_mnist)
    images, anns = gen.batch(range(25))
    assert len(loaded) == 25
    assert loaded.annotations == anns
    assert np.array_equal(np.stack([loaded.image_uint8(i) for i in range(25)]), images)
    item = loaded[3]
    assert item["image"].shape == (1, 64, 64)
    assert np.array_equal((item["image"][0].numpy() * 255).round().astype(np.uint8), images[3])
    assert item["n_objects"] == len(anns[3]["classes"])
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["complete"] and [s["count"] for s in manifest["shards"]] == [10, 10, 5]
    assert (tmp_path / "d" / "preview.png").exists()
    assert json.loads((tmp_path / "d" / "annotations.json").read_text()) == anns
    if fmt == "png":
        assert (tmp_path / "d" / "images" / "000024.png").exists()


def test_interrupted_export_resumes(tmp_path, fake_mnist, monkeypatch):
    real = store._write_shard
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "_write_shard", flaky)
    out = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        _export(out, fake_mnist)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000.npz"], "no partial shard"
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 1
    with pytest.raises(GNMError, match="incomplete"):
        store.SceneShards(out)
    monkeypatch.setattr(store, "_write_shard", real)
    _export(out, fake_mnist)
    _export(tmp_path / "ref", fake_mnist)
    a, b = store.SceneShards(out), store.SceneShards(tmp_path / "ref")
    assert a.annotations == b.annotations
    assert all(np.array_equal(a.image_uint8(i), b.image_uint8(i)) for i in range(25))


def test_damaged_shard_is_rebuilt_on_rerun(tmp_path, fake_mnist):
    out = tmp_path / "d"
    _export(out, fake_mnist)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    shard = out / "shards" / "00001.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    _export(out, fake_mnist)
    assert len(store.SceneShards(out)) == 25


@pytest.mark.parametrize("damage", ["truncate", "tamper", "delete"])
def test_loader_refuses_damaged_shards(tmp_path, fake_mnist, damage):
    out = tmp_path / "d"
    _export(out, fake_mnist)
    shard = out / "shards" / "00001.npz"
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "tamper":
        shard.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        shard.unlink()
    with pytest.raises(GNMError, match="00001.npz"):
        store.SceneShards(out)


def test_loader_refuses_tampered_png(tmp_path, fake_mnist):
    out = tmp_path / "d"
    _export(out, fake_mnist, fmt="png", n=5)
    png = out / "images" / "000002.png"
    png.write_bytes(png.read_bytes() + b"x")
    loaded = store.SceneShards(out)
    loaded.image_uint8(1)
    with pytest.raises(GNMError, match="000002.png"):
        loaded.image_uint8(2)


def test_bad_input(tmp_path, fake_mnist):
    with pytest.raises(GNMError, match="positive number"):
        _export(tmp_path / "a", fake_mnist, n=0)
    with pytest.raises(GNMError, match="unknown format"):
        _export(tmp_path / "a", fake_mnist, fmt="tiff")
    with pytest.raises(GNMError, match="multiple of 16"):
        _export(tmp_path / "a", fake_mnist, size=100)
    with pytest.raises(GNMError, match="unknown dataset"):
        _export(tmp_path / "a", fake_mnist, dataset="mnist3")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(GNMError, match="not empty"):
        _export(tmp_path / "busy", fake_mnist)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    _export(tmp_path / "done", fake_mnist, n=5)
    with pytest.raises(GNMError, match=r"different export \(n=5 \(asked 6\)\)"):
        _export(tmp_path / "done", fake_mnist, n=6)
    (tmp_path / "file").write_text("x")
    with pytest.raises(GNMError, match="is a file, not a folder"):
        _export(tmp_path / "file" / "sub", fake_mnist)
    assert not (tmp_path / "a").exists(), "nothing written for refused input"


def test_cli_make_and_errors(tmp_path, fake_mnist, monkeypatch, capsys):
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
    out = tmp_path / "cli"
    rc = cli.main(["data", "make", "mnist10", "--n", "12", "--out", str(out), "--size", "64",
                   "--format", "png", "--quiet"])
    assert rc == 0 and len(list((out / "images").iterdir())) == 12
    for argv, match in [
        (["data", "make", "mnist7", "--n", "3", "--out", str(tmp_path / "x")], "unknown dataset"),
        (["data", "make", "mnist4", "--n", "-1", "--out", str(tmp_path / "x")], "positive"),
        (["data", "make", "mnist4", "--n", "3", "--size", "72", "--out", str(tmp_path / "x")],
         "multiple of 16"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("gnm: error: ") and match in err and err.count("\n") == 1


def test_export_of_another_scene_version_is_refused(tmp_path, fake_mnist, monkeypatch):
    from gnm.data import registry

    out = tmp_path / "d"
    _export(out, fake_mnist)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scene_version"] == registry.dataset_spec("mnist4_10").version == 1
    spec = registry.dataset_spec("mnist4_10")
    monkeypatch.setitem(registry._DATASETS, "mnist4_10",
                        registry.DatasetSpec(spec.build, spec.channels, spec.options, 2))
    with pytest.raises(GNMError, match="version 1, but this gnm makes version 2"):
        store.SceneShards(out)
    with pytest.raises(GNMError, match="delete the folder and export again"):
        _export(out, fake_mnist)
    del manifest["scene_version"]  # exports made before versions were recorded hold version 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GNMError, match="version 1, but"):
        store.SceneShards(out)
