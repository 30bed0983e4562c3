"""The Arrow Room judge: its labels (geometry), its decision rules on hand-built net outputs,
and the shipped network on rendered scenes."""

import math

import numpy as np
import pytest
import torch

from gnm.data.arrow_room import ArrowRoomGenerator
from gnm.data.raycast import ARROW, CUBE, CYLINDER, SPHERE
from gnm.errors import GNMError
from gnm.eval import arrow_net as an
from gnm.eval.arrow_judge import decide, judge_arrow, read_objects


def test_labels_point_the_arrow_at_its_target_in_the_image():
    gen = ArrowRoomGenerator("val", 64, seed=3)
    for i in range(5):
        lay = an._pad(gen.layout(i))
        lab = an.label_layout(lay)
        a, t = lab["anchor"][0, 0], lab["anchor"][0, int(lay.target[0])]
        d = lab["direction"][0, 0]
        want = torch.nn.functional.normalize(t - a, dim=0)
        assert float((d * want).sum()) > math.cos(math.radians(0.5))
        assert lab["direction"][0, 1:].abs().sum() == 0  # only arrows have a heading
        # an object's floor anchor lies on (or within a pixel of: a sphere's contact point is
        # at its silhouette's lower edge) its own pixels, unless another object hides it
        out = gen.render(lay)
        near = 0
        for k in range(4):
            rows, cols = torch.nonzero(out["ids"][0] == k, as_tuple=True)
            gap = ((cols + 0.5 - lab["anchor"][0, k, 0]) ** 2
                   + (rows + 0.5 - lab["anchor"][0, k, 1]) ** 2).sqrt().min()
            near += int(gap <= 1.0)
        assert near >= 3


def test_pixel_targets_follow_the_hit_buffer():
    s = an.training_scenes(4, seed=1, progress=False)
    t = an.pixel_targets(s, torch.arange(4))
    ids = s.ids.long()
    assert torch.equal(t["fg"], ids >= 0)
    b, r, c = torch.nonzero(ids >= 0, as_tuple=True)
    assert torch.equal(t["shape"][b, r, c], s.shape[b, ids[b, r, c]] + 1)
    assert (t["shape"][ids < 0] == 0).all()
    # the heat map peaks (≈1) at each labelled anchor
    k = int(torch.nonzero((s.pixels[0] >= an.MIN_LABEL_PIXELS) & (s.shape[0] >= 0))[0])
    col, row = s.anchor[0, k].floor().long()
    if 0 <= col < an.SIDE and 0 <= row < an.SIDE:
        assert t["heat"][0, row, col] > 0.8


def test_augment_keeps_images_in_range_and_changes_them():
    x = torch.rand(6, 3, 64, 64)
    y = an.augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert (y - x).abs().mean() > 1e-3


def _output(objects):
    """Net output [19, 64, 64] with one 5x5 blob per object: (col, row, shape, material,
    depth, heading) -- certain shapes (logit 10) unless shape is a list of logits."""
    out = torch.zeros(an.OUT_CHANNELS, 64, 64)
    out[an.SHAPE][0] = 10.0
    out[an.ANCHOR] = -10.0
    for col, row, shape, material, depth, heading in objects:
        sl = (slice(row - 2, row + 3), slice(col - 2, col + 3))
        logits = torch.full((5,), 0.0)
        if isinstance(shape, list):
            logits[1:] = torch.tensor(shape)
        else:
            logits[1 + shape] = 10.0
        out[an.SHAPE][(slice(None),) + sl] = logits[:, None, None]
        out[an.MATERIAL.start + material][sl] = 10.0
        out[an.DEPTH][sl] = depth / an.DEPTH_SCALE
        out[an.DIRECTION][(slice(None),) + sl] = torch.tensor(
            [math.cos(heading), math.sin(heading)])[:, None, None]
        out[an.ANCHOR][row, col] = 5.0
    return out


def _scene(target_col=16, materials=(0, 0, 0, 0), arrow_depth=6.0, n=4, unsure=False):
    # arrow at the bottom centre; cube, cube, sphere (the unique shape) at the top
    heading = math.atan2(20 - 52, target_col - 32)
    objs = [(32, 52, ARROW, materials[0], arrow_depth, heading),
            (32, 20, CUBE, materials[1], 9.0, 0.0), (48, 20, CUBE, materials[2], 9.5, 0.0),
            (16, 20, [3.0, 3.0, 3.0, -9.0] if unsure else SPHERE, materials[3], 9.2, 0.0)]
    return decide(read_objects(_output(objs[:n])))


def test_decide_follows_the_rule_on_hand_built_outputs():
    v = _scene()
    assert v.ok and v.reason == "ok" and v.n_objects == 4 and v.target >= 0
    assert v.shapes[v.target] == "sphere" and sorted(v.shapes).count("cube") == 2
    assert _scene(target_col=48).reason == "wrong_target"  # points at a cube
    assert _scene(materials=(0, 0, 1, 0)).reason == "mixed_materials"
    assert _scene(arrow_depth=12.0).reason == "arrow_not_nearest"
    assert _scene(n=3).reason == "wrong_count"
    assert _scene(unsure=True).reason == "unrecognised"


def test_decide_counts_shapes():
    heading = math.atan2(20 - 52, 16 - 32)
    three = [(32, 52, ARROW, 0, 6.0, heading), (32, 20, CYLINDER, 0, 9.0, 0.0),
             (48, 20, CYLINDER, 0, 9.0, 0.0), (16, 20, CYLINDER, 0, 9.0, 0.0)]
    assert decide(read_objects(_output(three))).reason == "three_alike"
    three[3] = (16, 20, SPHERE, 0, 9.0, 0.0)
    three[2] = (48, 20, CUBE, 0, 9.0, 0.0)
    assert decide(read_objects(_output(three))).reason == "no_pair"
    three[2] = (48, 20, ARROW, 0, 9.0, 0.0)
    assert decide(read_objects(_output(three))).reason == "arrows"


def test_bad_images_are_refused_in_one_sentence():
    with pytest.raises(GNMError, match="square RGB"):
        judge_arrow(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(GNMError, match="too small"):
        judge_arrow(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(GNMError, match="NaN"):
        judge_arrow(torch.full((2, 3, 64, 64), float("nan")))


def test_shipped_judge_passes_real_scenes_and_fails_corrupted_ones():
    from gnm.data.arrow_corrupt import corrupted_batch

    gen = ArrowRoomGenerator("val", 64, seed=11)
    images, _ = gen.batch(range(24))
    r = judge_arrow(images)
    assert r["n"] == 24 and r["sacc"] >= 18 / 24, r["reasons"]  # validated: 0.85 at 64 px
    bad, notes = corrupted_batch(gen, range(24), "three_alike")
    assert all(n["verdict"] == "three_alike" for n in notes)
    assert judge_arrow(bad)["sacc"] <= 3 / 24
    # 128-px images are read at 64 px
    big, _ = ArrowRoomGenerator("val", 128, seed=11).batch(range(8))
    assert judge_arrow(big)["sacc"] >= 6 / 8


def test_gnm_judge_reads_an_arrow_png_export(tmp_path, capsys):
    import json

    from gnm.cli import main

    out = tmp_path / "arrow"
    assert main(["data", "make", "arrow", "--split", "val", "--n", "6", "--size", "64",
                 "--format", "png", "--out", str(out), "--quiet"]) == 0
    assert main(["judge", "--dataset", "arrow", "--images", str(out), "--quiet",
                 "--json", str(tmp_path / "v.json")]) == 0
    r = json.loads((tmp_path / "v.json").read_text())
    assert r["n"] == 6 and r["dataset"] == "arrow" and len(r["verdicts"]) == 6
    assert "S-Acc" in capsys.readouterr().out


def test_windows_by_hand():
    from gnm.eval.arrow_crops import CropNet, windows

    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)  # value = 64b + 8r + c
    w = windows(x, torch.tensor([[3.5, 2.5], [0.2, 0.2]]), torch.tensor([1, 0]), size=4)
    # centre pixel (row 2, col 3) of image 1 sits at window (2, 2): rows 0-3, cols 1-4
    assert torch.equal(w[0, 0], 64 + 8 * torch.arange(4)[:, None] + torch.arange(1, 5))
    # at the corner the image is extended by its edge pixels
    assert torch.equal(w[1, 0, :, 0], torch.tensor([0.0, 0.0, 0.0, 8.0]))
    assert CropNet()(torch.rand(5, 3, 20, 20)).shape == (5, 4)
