"""z_what probe: nearest-object labelling and the 2-layer MLP on synthetic features."""

from __future__ import annotations

import pytest
import torch

from gnm.errors import GNMError
from gnm.eval.probe import nearest_object_labels, probe_accuracy, zwhat_probe


def clusters(n: int, n_classes: int = 10, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.randn(n_classes, dim, generator=g)
    labels = torch.arange(n) % n_classes
    return centres[labels] + 0.5 * torch.randn(n, dim, generator=g), labels


def test_nearest_object_labels():
    pred = torch.tensor([[[0.0, 0.0, 10.0, 10.0],      # centre (5, 5): nearest GT 0
                          [18.0, 18.0, 30.0, 30.0],    # centre (24, 24): nearest GT 1
                          [0.0, 0.0, 4.0, 4.0]],       # absent (presence 0.2)
                         [[0.0, 0.0, 8.0, 8.0],        # an image without ground truth
                          [1.0, 1.0, 2.0, 2.0],
                          [1.0, 1.0, 2.0, 2.0]]])
    presence = torch.tensor([[0.9, 0.6, 0.2], [0.9, 0.9, 0.9]])
    gt = torch.zeros(2, 3, 4)
    gt[0, 0] = torch.tensor([2.0, 2.0, 9.0, 9.0])
    gt[0, 1] = torch.tensor([20.0, 20.0, 30.0, 30.0])
    gt[0, 2] = torch.tensor([1.0, 1.0, 3.0, 3.0])      # padding row: must be ignored
    classes = torch.tensor([[4, 7, -1], [-1, -1, -1]])
    mask, labels = nearest_object_labels(pred, presence, gt, classes)
    assert mask.tolist() == [[True, True, False], [False, False, False]]
    assert labels.tolist() == [[4, 7, -1], [-1, -1, -1]]


def test_separable_clusters_are_classified_almost_perfectly():
    x, y = clusters(600)
    out = probe_accuracy(x, y, epochs=20, progress=False)
    assert out["accuracy"] >= 0.97
    assert out["n_train"] == 480 and out["n_test"] == 120 and out["n_classes"] == 10
    assert out["ci95"][0] <= out["accuracy"] <= out["ci95"][1]


def test_random_labels_stay_near_chance():
    x, _ = clusters(600)
    y = torch.randint(10, (600,), generator=torch.Generator().manual_seed(1))
    out = probe_accuracy(x, y, epochs=20, progress=False)
    assert out["accuracy"] < 0.25
    assert out["chance"] < 0.25


def test_probe_is_deterministic_given_seed():
    x, y = clusters(200)
    y = (y + (torch.arange(200) % 3 == 0).long()) % 10     # some label noise
    a = probe_accuracy(x, y, epochs=5, seed=3, progress=False)
    b = probe_accuracy(x, y, epochs=5, seed=3, progress=False)
    assert a == b


def test_zwhat_probe_end_to_end():
    # 60 images x 4 objects; z_what encodes the class of the GT object at the same position.
    x, y = clusters(240, n_classes=10)
    b = 60
    corners = torch.tensor([[0.0, 0.0], [40.0, 0.0], [40.0, 40.0], [0.0, 40.0]])
    gt_boxes = torch.cat([corners, corners + 20.0], dim=1).expand(b, 4, 4).clone()
    pred_boxes = gt_boxes + 1.0
    presence = torch.full((b, 4), 0.9)
    out = zwhat_probe(x.reshape(b, 4, -1), pred_boxes, presence, gt_boxes, y.reshape(b, 4),
                      epochs=20, progress=False)
    assert out["n_objects"] == 240 and out["accuracy"] >= 0.95


def test_errors():
    x, y = clusters(20)
    with pytest.raises(GNMError, match="non-negative"):
        probe_accuracy(x, torch.full((20,), -1), progress=False)
    with pytest.raises(GNMError, match="cannot be split"):
        probe_accuracy(x[:1], y[:1], progress=False)
    with pytest.raises(GNMError, match=r"\[N, D\]"):
        probe_accuracy(x, y[:5], progress=False)
