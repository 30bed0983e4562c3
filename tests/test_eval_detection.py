"""Box AP on hand-made cases whose AP is computed by hand (COCO 101-point interpolation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnm.errors import GNMError
from gnm.eval.detection import (
    COCO_IOU_THRESHOLDS,
    average_precision,
    box_ap,
    box_ap_from_tensors,
    box_fit,
    box_iou,
    unpad,
)

A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 30.0, 30.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def test_iou_of_simple_boxes():
    iou = box_iou([A, [0.0, 0.0, 10.0, 5.0], [5.0, 0.0, 15.0, 10.0], B], [A])
    assert np.allclose(iou[:, 0], [1.0, 0.5, 50.0 / 150.0, 0.0])
    assert box_iou(np.zeros((0, 4)), [A]).shape == (0, 1)


def test_perfect_match_is_one_at_every_threshold():
    out = box_ap([[A, B], [FAR]], [[0.9, 0.8], [0.7]], [[B, A], [FAR]])
    assert out["ap50"] == 1.0 and out["ap"] == 1.0
    assert set(out["per_threshold"]) == {str(t) for t in COCO_IOU_THRESHOLDS}
    assert (out["n_images"], out["n_gt"], out["n_pred"]) == (2, 3, 3)


def test_false_positive_ranked_first():
    # One GT; the top-scored prediction misses it: precision 1/2 at recall 1, so the envelope is
    # 0.5 at every recall point.
    assert average_precision([[FAR, A]], [[0.9, 0.8]], [[A]]) == pytest.approx(0.5)
    # Two GT, ranked TP, FP, TP: (recall, precision) = (.5, 1), (.5, .5), (1, 2/3). 101-point
    # envelope: 1 at recalls 0..0.50 (51 points), 2/3 at 0.51..1.00 (50 points).
    ap = average_precision([[A, FAR, B]], [[0.9, 0.8, 0.7]], [[A, B]])
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    # Same detections with a false positive ranked last cost nothing.
    assert average_precision([[A, B, FAR]], [[0.9, 0.8, 0.7]], [[A, B]]) == pytest.approx(1.0)


def test_missed_box_caps_recall():
    # Two GT, one found: recall reaches 0.5 only -> 51 of 101 points have precision 1.
    assert average_precision([[A], []], [[0.9], []], [[A], [B]]) == pytest.approx(51 / 101)
    # No predictions at all.
    assert average_precision([[]], [[]], [[A]]) == 0.0


@pytest.mark.parametrize("height,tp", [(5.1, True), (4.9, False), (5.0, True)])
def test_iou_just_above_or_below_threshold(height, tp):
    # IoU of [0, 0, 10, h] with A is h / 10; a match needs IoU >= 0.5.
    ap = average_precision([[[0.0, 0.0, 10.0, height]]], [[0.9]], [[A]], iou_threshold=0.5)
    assert ap == (1.0 if tp else 0.0)


def test_ap_averages_over_coco_thresholds():
    # IoU 0.72 is a TP at 0.50, 0.55, 0.60, 0.65, 0.70 and a FP at 0.75..0.95.
    out = box_ap([[[0.0, 0.0, 10.0, 7.2]]], [[0.9]], [[A]])
    assert out["ap50"] == 1.0
    assert out["ap"] == pytest.approx(0.5)


def test_one_gt_cannot_be_matched_twice_and_best_iou_wins():
    near = [0.0, 0.0, 10.0, 9.0]           # IoU 0.9 with A
    # Two predictions on one GT: the second is a duplicate (FP).
    assert average_precision([[A, near]], [[0.9, 0.8]], [[A]]) == pytest.approx(1.0)
    assert average_precision([[near, A]], [[0.9, 0.8]], [[A, FAR]]) == pytest.approx(
        51 / 101)
    # A prediction overlapping two GT boxes takes the one with the higher IoU.
    gt_left, gt_right = [0.0, 0.0, 10.0, 10.0], [4.0, 0.0, 14.0, 10.0]
    pred = [3.0, 0.0, 13.0, 10.0]          # IoU 7/13 with gt_left, 9/11 with gt_right
    # (Both IoUs pass 0.5; taking gt_left would leave the exact gt_left prediction unmatched.)
    out = box_ap([[pred, gt_left]], [[0.9, 0.8]], [[gt_left, gt_right]], iou_thresholds=(0.5,))
    assert out["per_threshold"]["0.5"] == pytest.approx(1.0)


def test_padded_tensors_and_unpad():
    pred = torch.tensor([[A, B, FAR], [FAR, A, B]])
    presence = torch.tensor([[0.9, 0.8, 0.1], [0.05, 0.95, 0.02]])
    gt = torch.zeros(2, 10, 4)
    gt[0, :2] = torch.tensor([A, B])
    gt[1, 0] = torch.tensor(A)
    counts = torch.tensor([2, 1])
    out = box_ap_from_tensors(pred, presence, gt, counts)
    # Ranked: A(.95,TP) A(.9,TP) B(.8,TP) FAR(.1) FAR(.05) B(.02,FP): recall 1 with precision 1.
    assert out["ap50"] == 1.0 and out["n_gt"] == 3 and out["n_pred"] == 6
    assert [len(g) for g in unpad(gt, counts=counts)] == [2, 1]
    classes = torch.full((2, 10), -1)
    classes[0, :2], classes[1, 0] = 3, 7
    assert [len(g) for g in unpad(gt, mask=classes >= 0)] == [2, 1]
    assert box_ap_from_tensors(pred, presence, gt, counts, min_score=0.5)["n_pred"] == 3


def test_errors():
    with pytest.raises(GNMError, match="no ground-truth"):
        box_ap([[A]], [[0.9]], [[]])
    with pytest.raises(GNMError, match="same images"):
        box_ap([[A]], [[0.9]], [[A], [B]])
    with pytest.raises(GNMError, match="one score per box"):
        box_ap([[A, B]], [[0.9]], [[A]])


def test_box_fit_by_hand():
    pred = torch.tensor([[[0, 0, 10, 20], [20, 20, 30, 40], [50, 50, 60, 60]],
                         [[0, 0, 4, 4], [0, 0, 0, 0], [0, 0, 0, 0]]], dtype=torch.float32)
    presence = torch.tensor([[0.9, 0.8, 0.2], [0.1, 0.0, 0.0]])
    gt = torch.tensor([[[0, 0, 10, 10], [20, 20, 30, 40]], [[0, 0, 4, 4], [0, 0, 0, 0]]],
                      dtype=torch.float32)
    f = box_fit(pred, presence, gt, torch.tensor([2, 1]))
    # best IoUs: 100/200 = 0.5 (twice as tall), 1.0 (exact), 0.0 (image 1 has no present box)
    assert f["median_iou"] == pytest.approx(0.5)
    assert f["frac_iou50"] == pytest.approx(2 / 3)
    assert f["median_h_ratio"] == pytest.approx(1.5) and f["median_w_ratio"] == pytest.approx(1.0)
    assert f["pred_per_image"] == pytest.approx(1.0) and f["n_gt"] == 3
    with pytest.raises(GNMError, match="presence"):
        box_fit(pred, presence[:, :2], gt, torch.tensor([2, 1]))
    with pytest.raises(GNMError, match="no ground-truth"):
        box_fit(pred, presence, gt, torch.tensor([0, 0]))
