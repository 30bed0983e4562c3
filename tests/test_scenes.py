"""Scene rules checked on >= 1000 scenes, from the ground truth AND from the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnm.data.scenes import (
    MNIST10_SETS,
    SceneDataset,
    SceneGenerator,
    check_size,
    patch_size,
)
from gnm.errors import GNMError
from tests.conftest import class_from_value

S = 128
N = 1000


def quadrant_of(box, size=S) -> int:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    right, bottom = cx >= size / 2, cy >= size / 2
    return {(False, False): 0, (True, False): 1, (True, True): 2, (False, True): 3}[(right, bottom)]


def inside_quadrant(box, q, size=S) -> bool:
    h = size // 2
    x0, y0 = [(0, 0), (h, 0), (h, h), (0, h)][q]
    return x0 <= box[0] and box[2] <= x0 + h and y0 <= box[1] and box[3] <= y0 + h


def quadrant_pixels(image, q, size=S):
    h = size // 2
    x0, y0 = [(0, 0), (h, 0), (h, h), (0, h)][q]
    return image[y0:y0 + h, x0:x0 + h], x0, y0


def centroid(region) -> tuple[float, float]:
    """Intensity-weighted centroid in pixel-centre coordinates (pixel i spans [i, i+1))."""
    w = region.astype(np.float64)
    ys, xs = np.mgrid[: region.shape[0], : region.shape[1]] + 0.5
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


@pytest.fixture(scope="module")
def mnist4(fake_mnist):
    gen = SceneGenerator("mnist4", "train", S, seed=3, mnist=fake_mnist)
    return gen.batch(range(N))


@pytest.fixture(scope="module")
def mnist10(fake_mnist):
    gen = SceneGenerator("mnist10", "train", S, seed=3, mnist=fake_mnist)
    return gen.batch(range(N))


def test_mnist4_rules_from_ground_truth(mnist4):
    _, anns = mnist4
    starts = []
    for a in anns:
        d = a["params"]["start_class"]
        starts.append(d)
        assert 0 <= d <= 6
        assert a["classes"] == [d, d + 1, d + 2, d + 3]
        assert a["quadrants"] == [0, 1, 2, 3]
        for box, q in zip(a["boxes"], a["quadrants"], strict=True):
            assert inside_quadrant(box, q)
        # Fake digits are exactly centred, so boxes mirror exactly about both centre lines.
        c = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in a["boxes"]]
        assert c[0][0] + c[1][0] == S and c[0][1] == c[1][1]
        assert c[0][0] + c[2][0] == S and c[0][1] + c[2][1] == S
        assert c[3][0] == c[0][0] and c[0][1] + c[3][1] == S
    counts = np.bincount(starts, minlength=7)
    assert counts.min() > N / 7 * 0.7 and counts.max() < N / 7 * 1.3


def test_mnist4_rules_from_pixels(mnist4):
    images, anns = mnist4
    for image, a in zip(images, anns, strict=True):
        cents, classes = [], []
        for q in range(4):
            region, x0, y0 = quadrant_pixels(image, q)
            assert region.max() > 0, "every quadrant holds a digit"
            cx, cy = centroid(region)
            cents.append((x0 + cx, y0 + cy))
            classes.append(class_from_value(region.max()))
        d = a["params"]["start_class"]
        assert classes == [d, d + 1, d + 2, d + 3]
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = cents
        assert abs(x0 + x1 - S) < 0.5 and abs(y0 - y1) < 0.5
        assert abs(x0 + x2 - S) < 0.5 and abs(y0 + y2 - S) < 0.5
        assert abs(x0 - x3) < 0.5 and abs(y0 + y3 - S) < 0.5


def _set_quadrants(a) -> list[int]:
    """Quadrant of each MNIST-10 class set, in the order of MNIST10_SETS."""
    out = []
    for classes in MNIST10_SETS:
        qs = {a["quadrants"][a["classes"].index(c)] for c in classes}
        assert len(qs) == 1, "a class set stays in one quadrant"
        out.append(qs.pop())
    return out


def test_mnist10_rules_from_ground_truth(mnist10):
    _, anns = mnist10
    swaps13 = swaps24 = 0
    for a in anns:
        assert sorted(a["classes"]) == list(range(10))
        q1, q2, q3, q4 = _set_quadrants(a)
        assert (q3 - q1) % 4 == 2 and (q4 - q2) % 4 == 2, "sets pair up on the diagonals"
        assert {q1, q3} == {0, 2} and {q2, q4} == {1, 3}
        assert (q1 == 2) == a["params"]["swap_13"] and (q2 == 3) == a["params"]["swap_24"]
        swaps13 += a["params"]["swap_13"]
        swaps24 += a["params"]["swap_24"]
        for box, q in zip(a["boxes"], a["quadrants"], strict=True):
            assert inside_quadrant(box, q)
            assert quadrant_of(box) == q
        # Q1 and Q3 digits sit at the same within-quadrant positions (0 with 8, 1 with 9).
        h = S // 2
        for c1, c3 in ((0, 8), (1, 9)):
            b1 = a["boxes"][a["classes"].index(c1)]
            b3 = a["boxes"][a["classes"].index(c3)]
            m1 = ((b1[0] + b1[2]) / 2 % h, (b1[1] + b1[3]) / 2 % h)
            m3 = ((b3[0] + b3[2]) / 2 % h, (b3[1] + b3[3]) / 2 % h)
            assert m1 == m3
        # No two ink boxes overlap (fake ink is smaller than the nominal ink square).
        boxes = np.array(a["boxes"])
        for i in range(10):
            for j in range(i + 1, 10):
                bi, bj = boxes[i], boxes[j]
                assert (bi[2] <= bj[0] or bj[2] <= bi[0] or bi[3] <= bj[1] or bj[3] <= bi[1])
    for count in (swaps13, swaps24):
        assert abs(count / N - 0.5) < 0.06, "each diagonal swap happens about half the time"


def test_mnist10_rules_from_pixels(mnist10):
    images, anns = mnist10
    for image, a in zip(images, anns, strict=True):
        values = set(np.unique(image)) - {0}
        assert sorted(class_from_value(v) for v in values) == list(range(10))
        q1, q2, q3, q4 = _set_quadrants(a)
        for classes, q in zip(MNIST10_SETS, (q1, q2, q3, q4), strict=True):
            region, _, _ = quadrant_pixels(image, q)
            found = sorted(class_from_value(v) for v in set(np.unique(region)) - {0})
            assert found == list(classes)


def test_mnist4_10_mixes_both_rules(fake_mnist):
    gen = SceneGenerator("mnist4_10", "train", S, seed=1, mnist=fake_mnist)
    images, anns = gen.batch(range(N))
    rules = [a["rule"] for a in anns]
    share = rules.count("mnist4") / N
    assert abs(share - 0.5) < 0.06
    for image, a in zip(images, anns, strict=True):
        assert len(a["classes"]) == (4 if a["rule"] == "mnist4" else 10)
        assert len(set(np.unique(image)) - {0}) == len(set(a["classes"]))


def test_determinism_and_seed(fake_mnist):
    g1 = SceneGenerator("mnist10", "test", S, seed=5, mnist=fake_mnist)
    g2 = SceneGenerator("mnist10", "test", S, seed=5, mnist=fake_mnist)
    g3 = SceneGenerator("mnist10", "test", S, seed=6, mnist=fake_mnist)
    for i in (0, 17, 123456):
        assert np.array_equal(g1[i].image, g2[i].image)
        assert g1[i].annotation == g2[i].annotation
    assert any(not np.array_equal(g1[i].image, g3[i].image) for i in range(5))
    # Order of generation does not matter: scene i is a function of i alone.
    a = g1.batch([3, 2, 1])[0]
    b = g2.batch([1, 2, 3])[0]
    assert np.array_equal(a[::-1], b)


def test_splits_use_disjoint_digits(fake_mnist):
    used = {}
    for split in ("train", "val", "test"):
        gen = SceneGenerator("mnist10", split, S, seed=0, mnist=fake_mnist)
        used[split] = {s for i in range(200) for s in gen[i].annotation["sources"]}
    n_train = len(fake_mnist.train_images)
    cut = n_train * 11 // 12
    assert max(used["train"]) < cut <= min(used["val"])
    assert max(used["val"]) < n_train
    assert used["train"].isdisjoint(used["val"])
    assert max(used["test"]) < len(fake_mnist.test_images)


def test_sizes_scale_digits(fake_mnist):
    assert patch_size(128) == 28 and patch_size(64) == 14
    gen = SceneGenerator("mnist4", "train", 64, seed=0, mnist=fake_mnist)
    scene = gen[0]
    assert scene.image.shape == (64, 64)
    for box, q in zip(scene.annotation["boxes"], scene.annotation["quadrants"], strict=True):
        assert inside_quadrant(box, q, size=64)
        assert 3 <= box[2] - box[0] <= 9  # 10-16 px squares scaled by 1/2
    for bad in (16, 40, 0, 100):
        with pytest.raises(GNMError, match="multiple of 16"):
            check_size(bad)


def test_bad_names(fake_mnist):
    with pytest.raises(GNMError, match="unknown dataset 'mnist5'"):
        SceneGenerator("mnist5", mnist=fake_mnist)
    with pytest.raises(GNMError, match="unknown split"):
        SceneGenerator("mnist4", "dev", mnist=fake_mnist)


def test_dataset_items_collate(fake_mnist):
    ds = SceneDataset("mnist4_10", "train", 64, seed=0, length=50, mnist=fake_mnist)
    assert len(ds) == 50
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert batch["image"].shape == (8, 1, 64, 64) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["boxes"].shape == (8, 10, 4) and batch["classes"].shape == (8, 10)
    n = batch["n_objects"]
    assert set(n.tolist()) <= {4, 10}
    assert ((batch["classes"] >= 0).sum(1) == n).all()


@pytest.mark.mnist
def test_real_mnist4_ink_symmetry():
    """Real digits: ink centroids mirror within a couple of pixels (MNIST is mass-centred)."""
    from gnm.data.mnist import MNIST_FILES, default_data_dir, load_mnist, mnist_dir

    if not all((mnist_dir() / f).exists() for f in MNIST_FILES):
        pytest.skip(f"real MNIST not in {default_data_dir()}/mnist; run `gnm data mnist`")
    gen = SceneGenerator("mnist4", "test", S, seed=0, mnist=load_mnist(allow_download=False))
    errs = []
    for i in range(300):
        image = gen[i].image
        cents = []
        for q in range(4):
            region, x0, y0 = quadrant_pixels(image, q)
            cx, cy = centroid(region)
            cents.append((x0 + cx, y0 + cy))
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = cents
        errs += [abs(x0 + x1 - S), abs(y0 - y1), abs(x0 + x2 - S), abs(y0 + y2 - S),
                 abs(x0 - x3), abs(y0 + y3 - S)]
    assert np.median(errs) < 1.0 and np.max(errs) < 4.0
