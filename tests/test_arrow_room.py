"""The Arrow Room generator: the rule holds, ground truth matches the pixels, determinism."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from gnm.data.arrow_room import (
    COLOURS,
    SIZE,
    ArrowRoomGenerator,
    check_scenes,
    probe,
    render,
    sample_layout,
    stack_layouts,
)
from gnm.data.raycast import ARROW


@pytest.fixture(scope="module")
def scenes():
    return ArrowRoomGenerator("train", size=64, seed=0).batch(range(12))


def test_rule_holds_on_every_scene(scenes):
    images, notes = scenes
    assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8
    for a in notes:
        shapes = a["shapes"]
        assert shapes[0] == "arrow" and "arrow" not in shapes[1:]
        others = shapes[1:]
        assert len(set(others)) == 2  # exactly two share a shape
        unique = [k + 1 for k, s in enumerate(others) if others.count(s) == 1]
        assert unique == [a["target"]] and a["rule_holds"]
        assert int(np.argmin(a["depth"])) == 0  # the arrow is nearest
        assert a["material"] in ("rubber", "metal") and set(a["colours"]) <= set(COLOURS)


def test_arrow_yaw_points_at_the_target(scenes):
    for a in scenes[1]:
        (x0, y0), (x1, y1) = a["positions"][0], a["positions"][a["target"]]
        assert abs(math.remainder(a["yaw"][0] - math.atan2(y1 - y0, x1 - x0), 2 * math.pi)) < 1e-9


def test_boxes_enclose_the_visible_pixels_and_objects_show(scenes):
    for a in scenes[1]:
        for (x0, y0, x1, y1), px in zip(a["boxes"], a["pixels"], strict=True):
            assert px >= 90 * (64 / 128) ** 2
            assert 0 < x0 < x1 < 64 and 0 < y0 < y1 < 64  # inside the frame, off the border
            assert px <= (x1 - x0) * (y1 - y0)
            assert 6 <= x1 - x0 <= 20 and 6 <= y1 - y0 <= 20  # 12-27 px at 128 px


def test_deterministic_and_independent_of_the_batch(scenes):
    gen = ArrowRoomGenerator("train", size=64, seed=0)
    images, notes = gen.batch([5, 2])
    np.testing.assert_array_equal(images[0], scenes[0][5])
    np.testing.assert_array_equal(images[1], scenes[0][2])
    assert notes[0] == scenes[1][5]
    other, _ = ArrowRoomGenerator("test", size=64, seed=0).batch([5])
    assert np.abs(other[0].astype(int) - images[0]).mean() > 1  # splits differ


def test_object_pixels_take_the_object_colour_and_metal_shines():
    lay = stack_layouts([sample_layout(np.random.default_rng([1, i])) for i in range(4)])
    lay.colour[:] = 1  # red everywhere
    lay.material[:] = [0, 1, 0, 1]
    out = render(lay, 64, shadow_samples=1)
    img, ids = out["image"], out["ids"]
    for b in range(4):
        obj = img[b][:, ids[b] >= 0]
        assert (obj[0] > obj[1] + 0.1).float().mean() > 0.8  # red dominates on objects
        floor = img[b][:, ids[b] == -1]
        assert (floor.max(0).values - floor.min(0).values).abs().max() < 1e-5  # grey floor
    peak = [img[b][:, ids[b] >= 0].max().item() for b in range(4)]
    assert peak[1] > peak[0] + 0.05 and peak[3] > peak[2] + 0.05  # metal highlights


def test_check_scenes_rejects_a_hidden_object_and_a_far_arrow():
    lay = stack_layouts([sample_layout(np.random.default_rng([2, 0]))] * 3)
    lay.pos[1, 2] = lay.pos[1, 1] + [0.0, 2.2 * SIZE]  # behind object 1, seen through it
    lay.pos[1, 3] = lay.pos[1, 1] + [0.0, 1.0 * SIZE]
    lay.pos[2, 0] = [0.0, 4.0]  # the arrow far away
    ok = check_scenes(lay, probe(lay, 64))
    assert ok[0] and not ok[2]
    assert lay.shape[0, 0] == ARROW
    from gnm.data.arrow_room import check_layouts

    assert check_layouts(lay)[0] and not check_layouts(lay)[2]  # the far arrow: no rays needed


def test_registry_builds_arrow_with_three_channels():
    from gnm.config import DataConfig
    from gnm.data.registry import build_dataset
    from gnm.errors import GNMError

    data = DataConfig(dataset="arrow", size=64, channels=3)
    item = build_dataset(data, "val")[3]
    assert item["image"].shape == (3, 64, 64) and item["n_objects"].item() == 4
    assert item["classes"][:4].tolist()[0] == ARROW and item["classes"][4].item() == -1
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    with pytest.raises(GNMError, match="data.channels=3"):
        build_dataset(DataConfig(dataset="arrow", size=64, channels=1), "val")
    torch.testing.assert_close(item["image"], build_dataset(data, "val")[3]["image"])


def test_export_round_trip_and_too_small_size(tmp_path):
    from gnm.cli import main
    from gnm.data.store import SceneShards

    out = tmp_path / "arrow"
    assert main(["data", "make", "arrow", "--split", "val", "--n", "6", "--size", "64",
                 "--out", str(out), "--shard-size", "4", "--quiet"]) == 0
    shards = SceneShards(out)
    images, notes = ArrowRoomGenerator("val", size=64).batch(range(6))
    np.testing.assert_array_equal(shards.image_uint8(4), images[4])
    assert shards[4]["image"].shape == (3, 64, 64) and shards.annotations[4] == notes[4]
    assert (out / "preview.png").is_file()
    # annotations.json in the interface contract's form: target indexes the non-arrow objects
    import json

    scenes = json.loads((out / "annotations.json").read_text())["scenes"]
    s = scenes[4]
    assert len(scenes) == 6 and s["index"] == 4 and len(s["objects"]) == 4
    assert s["objects"][0]["shape"] == "arrow" and s["objects"][0]["box"] == notes[4]["boxes"][0]
    assert s["target"] == notes[4]["target"] - 1  # the arrow is listed first
    unique = s["objects"][1 + s["target"]]["shape"]
    assert [o["shape"] for o in s["objects"][1:]].count(unique) == 1
    assert {"colour", "material", "depth"} <= set(s["objects"][2])
    assert main(["data", "make", "arrow", "--n", "2", "--size", "32",
                 "--out", str(tmp_path / "small")]) == 2


def test_render_benchmark_measures_distinct_batches():
    from tests.conftest import load_benchmark

    row = load_benchmark("arrow_render").measure(64, 2, 2, 1)
    assert row["size"] == 64 and len(row["all"]) == 2 and row["images_per_s"] > 0


def test_arrow_cpu_preset_learns_from_rendered_scenes():
    from gnm import build_model
    from gnm.data.registry import build_dataset
    from gnm.presets import get_preset

    cfg = get_preset("arrow-cpu")
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.stack([it["image"] for it in build_dataset(cfg.data, "val").batch_items(range(4))])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):  # the same batch: the loss must fall
        torch.manual_seed(1)
        out = model(x, step=0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert out["recon"].shape == (4, 3, 64, 64) and out["kl_bg"].item() > 0
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind", ["wrong_pointing", "three_alike", "all_different",
                                  "mixed_materials", "arrow_not_nearest", "missing_object",
                                  "extra_object"])
def test_each_corruption_breaks_the_rule_in_its_own_way(kind):
    from gnm.data.arrow_corrupt import KINDS, corrupted_batch
    from gnm.data.arrow_room import rule_verdict

    gen = ArrowRoomGenerator("test", size=64, shadow_samples=1)
    images, notes = corrupted_batch(gen, range(3), kind)
    assert images.shape == (3, 64, 64, 3)
    n_objects = 3 if kind == "missing_object" else 5 if kind == "extra_object" else 4
    for a in notes:
        assert a["verdict"] == KINDS[kind] and not a["rule_holds"], (kind, a["verdict"])
        assert len(a["shapes"]) == n_objects and min(a["pixels"]) >= 90 * (64 / 128) ** 2
    # the rule itself, by hand
    assert rule_verdict(["arrow", "cube", "cube", "sphere"], 3, [1, 2, 3, 4], ["metal"] * 4) == "ok"
    assert rule_verdict(["arrow", "cube", "cube", "sphere"], 1, [1, 2, 3, 4],
                        ["metal"] * 4) == "wrong_target"
    assert rule_verdict(["arrow", "cube", "cube", "sphere"], 3, [5, 2, 3, 4],
                        ["metal"] * 4) == "arrow_not_nearest"


def _one(shape, pos, yaw=None, target=1, eye=(0.0, -8.0, 4.0), look=(0.0, 0.4, 0.0)):
    """A one-scene layout with objects ``shape`` at floor ``pos`` and a fixed camera."""
    from gnm.data.arrow_room import Layout

    k = len(shape)
    return Layout(np.array([shape]), np.zeros((1, k), int), np.array([0]),
                  np.array([pos], float), np.array([yaw if yaw is not None else [0.0] * k]),
                  np.array([target]), np.array([eye]), np.array([look]))


def test_seen_needs_the_pixel_count_and_the_visible_fraction_by_hand():
    from gnm.data.arrow_room import MIN_VISIBLE, MIN_VISIBLE_FRACTION, seen

    ids = torch.full((3, 128, 128), -1)
    ids[:, :10, :20] = 0  # object 0 shows 200 px in every scene
    ids[:, 20:30, :10] = 1  # object 1 shows 100 px (>= MIN_VISIBLE = 90)
    alone = torch.tensor([[200, 100], [200, 100 / MIN_VISIBLE_FRACTION + 1], [200, 100]])
    present = torch.tensor([[True, True], [True, True], [True, False]])
    assert seen(ids, alone, present).tolist() == [True, False, True]
    ids[0, 20:30, :10] = -1
    ids[0, 20:28, :10] = 1  # 80 px: under MIN_VISIBLE although all of it is visible
    assert MIN_VISIBLE > 80 and not bool(seen(ids, torch.tensor([[200, 80]]), present[:1])[0])


def test_probe_counts_each_object_alone():
    lay = _one([0, 1], [[0.0, 0.5], [0.0, 2.5]])  # a sphere in front of a cube, one line
    out = probe(lay, 64)
    front = render(_one([0, -1], [[0.0, 0.5], [0.0, 50.0]]), 64, shadow_samples=1)
    back = render(_one([-1, 1], [[0.0, 50.0], [0.0, 2.5]]), 64, shadow_samples=1)
    alone = out["alone"][0].tolist()
    assert alone == [int((front["ids"] == 0).sum()), int((back["ids"] == 1).sum())]
    assert alone[0] == int((out["ids"] == 0).sum())  # nothing hides the front sphere
    assert 0 < int((out["ids"] == 1).sum()) < alone[1]  # the sphere hides part of the cube


def test_pointing_gap_by_projective_geometry():
    from gnm.data.arrow_room import pointing_gap

    # floor points on one floor line stay on one image line: the gap is zero
    line = _one([ARROW, 0, 1, 1], [[0.0, -2.0], [1.0, 1.0], [2.0, 4.0], [-2.0, 1.0]])
    assert pointing_gap(line)[0] == pytest.approx(0.0, abs=1e-3)
    # mirror-symmetric others about the camera's plane of symmetry: equal gaps, both > 0
    sym = _one([ARROW, 0, 1, 1], [[0.0, -2.0], [0.0, 2.0], [1.5, 2.0], [-1.5, 2.0]])
    left = _one([ARROW, 0, 1, -1], [[0.0, -2.0], [0.0, 2.0], [-1.5, 2.0], [0.0, 50.0]])
    right = _one([ARROW, 0, -1, 1], [[0.0, -2.0], [0.0, 2.0], [0.0, 50.0], [1.5, 2.0]])
    g = pointing_gap(stack_layouts([sym, left, right]))
    assert g[0] == pytest.approx(g[1], abs=1e-4) == pytest.approx(g[2], abs=1e-4) and g[0] > 5
    # with the others absent (-1) there is nothing to confuse it with
    alone = _one([ARROW, 0, -1, -1], [[0.0, -2.0], [0.0, 2.0], [0.0, 3.0], [1.0, 1.0]])
    assert pointing_gap(alone)[0] == 180.0


def test_check_scenes_rejects_ambiguous_pointing():
    from gnm.data.arrow_room import MIN_POINTING_GAP, pointing_gap

    lay = stack_layouts([sample_layout(np.random.default_rng([2, 0]))] * 2)
    target = int(lay.target[0])
    other = [k for k in (1, 2, 3) if k != target][0]
    lay.pos[1, other] = lay.pos[1, 0] + 1.45 * (lay.pos[1, target] - lay.pos[1, 0])  # behind it
    gaps = pointing_gap(lay)
    assert gaps[0] >= MIN_POINTING_GAP and gaps[1] < 1.0
    ok = check_scenes(lay, probe(lay, 64))
    assert ok[0] and not ok[1]


@pytest.mark.parametrize("size,supersample", [(64, 2), (48, 1)])
def test_probe_gives_renders_hit_buffer_without_shading(size, supersample):
    lay = stack_layouts([sample_layout(np.random.default_rng([5, i])) for i in range(4)])
    full = render(lay, size, shadow_samples=1, supersample=supersample)
    quick = probe(lay, size, supersample)
    assert torch.equal(quick["ids"], full["ids"]) and (full["ids"] >= 0).any()
    for k in range(4):  # each object rendered on its own covers its `alone` pixels
        only = lay.shape.copy()
        only[:, [j for j in range(4) if j != k]] = -1
        solo = render(dataclasses.replace(lay, shape=only), size, 1, supersample)["ids"]
        assert torch.equal(quick["alone"][:, k], (solo == k).sum((1, 2)))


def test_floor_hits_by_hand():
    from gnm.data.arrow_checks import floor_hits

    o = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]])
    v = torch.tensor([[[0.0, 0.0, -1.0], [0.6, 0.0, -0.8], [0.0, 0.6, 0.8]]])
    assert floor_hits(o, v).tolist() == [[2.0, pytest.approx(1.25), math.inf]]


def test_visible_inside_needs_seen_objects_off_the_border():
    from gnm.data.arrow_checks import visible_inside

    lay = _one([0, 1], [[0.0, 0.5], [0.0, 2.5]])
    ids = torch.full((1, 128, 128), -1)
    ids[0, 10:20, 10:30] = 0  # 200 px each, everything visible
    ids[0, 40:50, 10:30] = 1
    alone = torch.tensor([[200, 200]])
    assert visible_inside(lay, {"ids": ids, "alone": alone}).tolist() == [True]
    edge = ids.clone()
    edge[0, 40:50, 0:20] = 1  # object 1 now touches the left border
    assert visible_inside(lay, {"ids": edge, "alone": torch.tensor([[200, 300]])}).tolist() == [
        False]
    assert visible_inside(lay, {"ids": ids, "alone": torch.tensor([[200, 400]])}).tolist() == [
        False]  # object 1 shows only half of itself
