"""Box average precision (AP) of inferred object boxes against ground truth (paper Table 4).

Protocol (one class, "object"):

* Boxes are ``[x0, y0, x1, y1]`` in pixels with exclusive ends, treated as continuous
  rectangles: area ``(x1 − x0)(y1 − y0)``, no ``+1``.
* A prediction's score is its presence probability. All predictions take part (low scores only
  add to the tail of the precision/recall curve); pass ``min_score`` to drop some beforehand.
* Matching, per IoU threshold, COCO-style: predictions of all images are ranked by score
  (descending, stable, so ties keep input order); each takes the still-unmatched ground-truth
  box of its own image with the highest IoU, if that IoU ``>= threshold`` (a true positive),
  otherwise it is a false positive.
* AP = **COCO 101-point interpolated** precision: the precision envelope
  ``p_interp(r) = max_{r' >= r} p(r')`` averaged at recalls ``0, 0.01, ..., 1.00`` (0 beyond the
  highest recall reached).
* ``ap50`` is AP at IoU 0.5; ``ap`` is the mean AP over IoU 0.50:0.05:0.95 (10 thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gnm.errors import GNMError

#: COCO's IoU thresholds 0.50, 0.55, ..., 0.95.
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: Recall points of the 101-point interpolation.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _to_numpy(x, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.shape[1:] != shape_tail:
        raise GNMError(f"{name} has shape {tuple(arr.shape)}; expected [n, "
                       f"{', '.join(map(str, shape_tail))}]." if shape_tail else
                       f"{name} has shape {tuple(arr.shape)}; expected a 1-D array [n].")
    return arr


def box_iou(boxes1, boxes2) -> np.ndarray:
    """Pairwise IoU ``[N, M]`` of boxes ``[N, 4]`` and ``[M, 4]`` (x0, y0, x1, y1, pixels)."""
    a = _to_numpy(boxes1, (4,), "boxes1")
    b = _to_numpy(boxes2, (4,), "boxes2")
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])            # [N, M, 2] top-left corners
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])            # [N, M, 2] bottom-right corners
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def unpad(padded, counts=None, mask=None) -> list[torch.Tensor]:
    """Turn a padded tensor ``[B, K, ...]`` into a list of ``[n_i, ...]`` tensors.

    Give either ``counts [B]`` (the first ``n_i`` rows are real, e.g. a scene's ``n_objects``) or a
    boolean ``mask [B, K]`` (e.g. ``classes >= 0``); with neither, all ``K`` rows are kept.
    """
    padded = torch.as_tensor(padded)
    if counts is not None and mask is not None:
        raise GNMError("give unpad either counts or mask, not both.")
    if counts is not None:
        counts = torch.as_tensor(counts).reshape(-1).tolist()
        return [padded[i, :int(n)] for i, n in enumerate(counts)]
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        return [padded[i][mask[i]] for i in range(padded.shape[0])]
    return [padded[i] for i in range(padded.shape[0])]


def _check_lists(pred_boxes, pred_scores, gt_boxes):
    if not (len(pred_boxes) == len(pred_scores) == len(gt_boxes)):
        raise GNMError(f"predicted boxes ({len(pred_boxes)}), scores ({len(pred_scores)}) and "
                       f"ground-truth boxes ({len(gt_boxes)}) must cover the same images.")
    preds, scores, gts = [], [], []
    for i, (pb, ps, gb) in enumerate(zip(pred_boxes, pred_scores, gt_boxes, strict=True)):
        pb = _to_numpy(pb, (4,), f"predicted boxes of image {i}")
        ps = _to_numpy(ps, (), f"scores of image {i}")
        if ps.shape[0] != pb.shape[0]:
            raise GNMError(f"image {i} has {pb.shape[0]} predicted boxes but {ps.shape[0]} "
                           "scores; give one score per box.")
        preds.append(pb)
        scores.append(ps)
        gts.append(_to_numpy(gb, (4,), f"ground-truth boxes of image {i}"))
    return preds, scores, gts


def _match(preds, scores, gts, iou_threshold: float) -> np.ndarray:
    """True-positive flags of all predictions of all images, in descending score order."""
    image_of = np.concatenate([np.full(len(s), i) for i, s in enumerate(scores)]
                              or [np.zeros(0)]).astype(int)
    index_in = np.concatenate([np.arange(len(s)) for s in scores] or [np.zeros(0)]).astype(int)
    all_scores = np.concatenate(scores or [np.zeros(0)])
    order = np.argsort(-all_scores, kind="stable")
    ious = [box_iou(p, g) for p, g in zip(preds, gts, strict=True)]
    taken = [np.zeros(len(g), dtype=bool) for g in gts]
    tp = np.zeros(len(order), dtype=bool)
    for rank, j in enumerate(order):
        img, det = image_of[j], index_in[j]
        if len(gts[img]) == 0:
            continue
        cand = np.where(taken[img], -1.0, ious[img][det])
        best = int(np.argmax(cand))
        if cand[best] >= iou_threshold:
            taken[img][best] = True
            tp[rank] = True
    return tp


def _ap_101(tp: np.ndarray, n_gt: int) -> float:
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < len(tp), envelope[np.minimum(idx, len(tp) - 1)], 0.0)
    return float(sampled.mean())


def average_precision(pred_boxes: Sequence, pred_scores: Sequence, gt_boxes: Sequence,
                      iou_threshold: float = 0.5, min_score: float | None = None) -> float:
    """AP (101-point interpolated) at one IoU threshold.

    Args:
        pred_boxes: per image, predicted boxes ``[K_i, 4]`` (pixels, x0, y0, x1, y1).
        pred_scores: per image, scores ``[K_i]`` (presence probabilities).
        gt_boxes: per image, ground-truth boxes ``[G_i, 4]`` (no padding; see :func:`unpad`).
        iou_threshold: a match needs IoU ``>=`` this.
        min_score: drop predictions scoring below this first (``None``: keep all).
    """
    return box_ap(pred_boxes, pred_scores, gt_boxes, (iou_threshold,), min_score)["per_threshold"][
        str(iou_threshold)]


def box_ap(pred_boxes: Sequence, pred_scores: Sequence, gt_boxes: Sequence,
           iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
           min_score: float | None = None) -> dict:
    """Box AP at each IoU threshold, ``ap50`` and ``ap`` (the mean over ``iou_thresholds``).

    Arguments as in :func:`average_precision`. Returns ``{"ap50", "ap", "per_threshold",
    "n_images", "n_gt", "n_pred"}``; ``ap50`` is ``None`` when 0.5 is not among the thresholds,
    ``per_threshold`` maps ``str(threshold)`` to AP.
    """
    preds, scores, gts = _check_lists(pred_boxes, pred_scores, gt_boxes)
    if min_score is not None:
        keep = [s >= min_score for s in scores]
        preds = [p[k] for p, k in zip(preds, keep, strict=True)]
        scores = [s[k] for s, k in zip(scores, keep, strict=True)]
    n_gt = sum(len(g) for g in gts)
    if n_gt == 0:
        raise GNMError("there are no ground-truth boxes, so average precision is undefined; "
                       "evaluate on scenes that contain objects.")
    per = {}
    for thr in iou_thresholds:
        tp = _match(preds, scores, gts, float(thr))
        per[str(thr)] = _ap_101(tp, n_gt)
    ap50 = next((v for t, v in per.items() if abs(float(t) - 0.5) < 1e-9), None)
    return {"ap50": ap50, "ap": float(np.mean(list(per.values()))), "per_threshold": per,
            "n_images": len(gts), "n_gt": int(n_gt), "n_pred": int(sum(len(s) for s in scores))}


def _check_padded(pred_boxes: torch.Tensor, presence: torch.Tensor) -> None:
    """Padded predictions must pair boxes ``[B, K, 4]`` with presence ``[B, K]``."""
    if pred_boxes.shape[:2] != presence.shape:
        raise GNMError(f"predicted boxes {tuple(pred_boxes.shape)} and presence "
                       f"{tuple(presence.shape)} disagree; expected [B, K, 4] and [B, K].")


def box_ap_from_tensors(pred_boxes: torch.Tensor, presence: torch.Tensor,
                        gt_boxes: torch.Tensor, gt_counts: torch.Tensor,
                        iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
                        min_score: float | None = None) -> dict:
    """:func:`box_ap` on padded batches, e.g. ``model.decompose(x)`` against scene targets.

    Args:
        pred_boxes: ``[B, K, 4]`` predicted boxes in pixels (``decompose(x)["boxes"]``).
        presence: ``[B, K]`` presence probabilities, used as scores.
        gt_boxes: ``[B, G, 4]`` padded ground-truth boxes (a scene's ``boxes``).
        gt_counts: ``[B]`` number of real ground-truth boxes per image (``n_objects``).
    """
    _check_padded(pred_boxes, presence)
    return box_ap(unpad(pred_boxes), unpad(presence), unpad(gt_boxes, counts=gt_counts),
                  iou_thresholds, min_score)


def box_fit(pred_boxes: torch.Tensor, presence: torch.Tensor, gt_boxes: torch.Tensor,
            gt_counts: torch.Tensor, min_presence: float = 0.5) -> dict:
    """How well inferred boxes fit the ground truth: a diagnosis of AP, not a paper metric.

    Each ground-truth box is paired with the predicted box of its own image (presence
    ``>= min_presence``) that overlaps it most (no one-to-one matching). Arguments as in
    :func:`box_ap_from_tensors`. Returns ``{"median_iou", "frac_iou50", "median_h_ratio",
    "median_w_ratio", "pred_per_image", "n_gt"}``: the median best IoU, the share of
    ground-truth boxes whose best IoU is ``>= 0.5``, the medians of predicted/true height and
    width over pairs that overlap at all (``None`` if none do), and the mean number of predicted
    boxes per image. A ground-truth box with no predicted box in its image has IoU 0.
    """
    _check_padded(pred_boxes, presence)
    preds = unpad(pred_boxes, mask=presence >= min_presence)
    gts = unpad(gt_boxes, counts=gt_counts)
    best, h_ratio, w_ratio = [], [], []
    for p, g in zip(preds, gts, strict=True):
        p = _to_numpy(p, (4,), "predicted boxes")
        g = _to_numpy(g, (4,), "ground-truth boxes")
        if len(g) == 0:
            continue
        if len(p) == 0:
            best += [0.0] * len(g)
            continue
        iou = box_iou(p, g)  # [P, G]
        j = iou.argmax(0)
        for gi, pi in enumerate(j):
            best.append(float(iou[pi, gi]))
            if iou[pi, gi] > 0:
                h_ratio.append((p[pi, 3] - p[pi, 1]) / max(g[gi, 3] - g[gi, 1], 1e-9))
                w_ratio.append((p[pi, 2] - p[pi, 0]) / max(g[gi, 2] - g[gi, 0], 1e-9))
    if not best:
        raise GNMError("there are no ground-truth boxes, so box fit is undefined; evaluate on "
                       "scenes that contain objects.")
    best_arr = np.asarray(best)

    def med(v: list[float]) -> float | None:
        return float(np.median(v)) if v else None

    return {"median_iou": float(np.median(best_arr)), "frac_iou50": float((best_arr >= 0.5).mean()),
            "median_h_ratio": med(h_ratio), "median_w_ratio": med(w_ratio),
            "pred_per_image": float(np.mean([len(p) for p in preds])), "n_gt": len(best)}
