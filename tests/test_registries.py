"""Datasets and judges by name (gnm/data/registry.py, gnm/eval/judges.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnm import cli
from gnm.config import DataConfig
from gnm.data.registry import build_dataset, dataset_names, register_dataset
from gnm.data.scenes import MAX_OBJECTS
from gnm.data.store import export_scenes
from gnm.errors import GNMError
from gnm.eval.judge import judge_images
from gnm.eval.judges import has_judge, judge_for, judged_datasets, register_judge, require_judge

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["mnist4", "mnist10", "mnist4_10"])
def test_built_in_datasets_give_the_fixed_item_layout(name, fake_mnist):
    ds = build_dataset(DataConfig(dataset=name, size=32), "test", mnist=fake_mnist)
    item = ds[3]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["boxes"].shape == (MAX_OBJECTS, 4) and item["classes"].shape == (MAX_OBJECTS,)
    n = int(item["n_objects"])
    assert n in (4, 10) and (item["classes"][:n] >= 0).all() and (item["classes"][n:] == -1).all()
    again = build_dataset(DataConfig(dataset=name, size=32), "test", mnist=fake_mnist)[3]
    assert torch.equal(again["image"], item["image"])  # a pure function of (seed, split, i)


def test_unknown_datasets_and_wrong_channels():
    assert {"mnist4", "mnist10", "mnist4_10"} <= set(dataset_names())
    with pytest.raises(GNMError, match="unknown dataset 'cifar'; choose one of"):
        build_dataset(DataConfig(dataset="cifar"))
    with pytest.raises(GNMError, match="dataset mnist4 has 1-channel images, but "
                                       "data.channels=3; set data.channels=1"):
        build_dataset(DataConfig(dataset="mnist4", channels=3))


def test_a_registered_dataset_is_built_by_name(monkeypatch):
    from gnm.data import registry

    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))  # undone afterwards
    seen = {}

    def build(data, split, seed, mnist=None):
        seen.update(split=split, seed=seed)
        return [{"image": torch.zeros(3, data.size, data.size)}]

    register_dataset("blank_rgb", build, channels=3)
    ds = build_dataset(DataConfig(dataset="blank_rgb", size=32, channels=3, seed=7), "val")
    assert ds[0]["image"].shape == (3, 32, 32) and seen == {"split": "val", "seed": 7}


def test_data_path_trains_on_stored_scenes(tmp_path, fake_mnist, monkeypatch, capsys):
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
    export_scenes("mnist4", "train", 12, tmp_path / "scenes", size=32, progress=False)
    data = DataConfig(dataset="mnist4", size=32, path=str(tmp_path / "scenes"))
    stored = build_dataset(data, "train")
    assert len(stored) == 12
    fresh = build_dataset(DataConfig(dataset="mnist4", size=32), "train", mnist=fake_mnist)
    assert torch.equal(stored[5]["image"], fresh[5]["image"])  # the same scenes, read back
    assert len(build_dataset(data, "test", mnist=fake_mnist)) > 12  # eval: generated scenes
    with pytest.raises(GNMError, match="have size 32, but the run needs 64"):
        build_dataset(DataConfig(dataset="mnist4", size=64, path=str(tmp_path / "scenes")))
    from tests.test_model_contract import TOY_TRAIN

    run = tmp_path / "run"
    argv = ["train", "--preset", "mnist4-cpu", "--out", str(run), *TOY_TRAIN,
            "--set", f"data.path={tmp_path / 'scenes'}", "--set", "train.judge_every=0"]
    import tests.toy_vae  # noqa: F401  (registers toy_vae)

    assert cli.main(argv) == 0
    assert "trained to step 4" in capsys.readouterr().out


def test_judges_by_dataset_name(monkeypatch):
    from gnm.eval import judges
    from gnm.eval.arrow_judge import judge_arrow  # registered before the copy below

    monkeypatch.setattr(judges, "_JUDGES", dict(judges._JUDGES))  # undone afterwards

    assert judged_datasets() == ["arrow", "mnist10", "mnist4", "mnist4_10"]
    assert judge_for("mnist10") is judge_images and judge_for("arrow") is judge_arrow
    assert not has_judge("mystery")
    with pytest.raises(GNMError, match=r"^sacc needs a dataset with an S-Acc judge \(arrow, "
                                       r"mnist10, mnist4, mnist4_10\), not 'mystery'\.$"):
        require_judge("mystery", "sacc")

    def always(images, dataset, progress=False):
        return {"sacc": 1.0}

    register_judge("blank_rgb", always)
    assert judge_for("blank_rgb") is always and "blank_rgb" in judged_datasets()


def test_each_judge_loads_its_own_weights(monkeypatch, tmp_path, capsys):
    import gnm.eval.arrow_judge  # noqa: F401  (registered before the copies below)
    from gnm.eval import judges
    from gnm.eval.arrow_net import ArrowNet
    from gnm.eval.digits import DigitNet

    monkeypatch.setattr(judges, "_JUDGES", dict(judges._JUDGES))  # undone afterwards
    monkeypatch.setattr(judges, "_WEIGHTS", dict(judges._WEIGHTS))
    assert isinstance(judges.judge_weights("mnist4", None)["classifier"], DigitNet)
    assert isinstance(judges.judge_weights("arrow", None)["net"], ArrowNet)
    seen = []

    def scaled(images, dataset, progress=False, min_images=1, factor=0.0):
        seen.append(factor)
        return {"sacc": factor, "ci95": (0.0, 1.0), "n": 30, "sacc_strict": factor,
                "reasons": {"ok": 30}, "verdicts": []}

    register_judge("toy", scaled, lambda path: {"factor": float(Path(path).read_text())})
    (tmp_path / "w.txt").write_text("0.25")
    images = tmp_path / "images.npz"
    np.savez(images, images=np.zeros((30, 32, 32, 1), np.uint8))
    argv = ["judge", "--dataset", "toy", "--images", str(images), "--quiet"]
    assert cli.main([*argv, "--weights", str(tmp_path / "w.txt")]) == 0 and seen == [0.25]
    register_judge("plain", scaled)  # no weights of its own
    assert judges.judge_weights("plain", None) == {}
    register_judge("toy", scaled)  # replaced without a loader: the old one goes too
    assert judges.judge_weights("toy", None) == {}
    capsys.readouterr()
    assert cli.main([*argv[:2], "plain", *argv[3:], "--weights", "w.bin"]) == 2
    assert "the plain judge has no weights, so --weights w.bin cannot be used" in \
        capsys.readouterr().err
