"""z_what probe (paper App. B.2, Table 4): how well object appearance latents encode the class.

Protocol:

1. Keep the inferred objects with presence ``> 0.5`` and label each with the class of the
   ground-truth object whose box centre is nearest (Euclidean, pixels) to the predicted box
   centre (:func:`nearest_object_labels`). Images without ground truth contribute nothing.
2. Split the (z_what, label) pairs at random (seeded) into train / test (80 / 20 by default).
3. Standardise features with the training mean / std, train a 2-layer MLP
   ``Linear(D, 256) → ReLU → Linear(256, n_classes)`` with Adam (lr 1e-3), cross-entropy,
   minibatches of 128, for a fixed number of epochs (100), and report test accuracy.

Everything is seeded (split, initialisation, batch order) and the caller's global RNG state is
restored afterwards.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from gnm.errors import GNMError
from gnm.eval.stats import wilson_interval


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """Centres ``[..., 2]`` (x, y pixels) of boxes ``[..., 4]`` (x0, y0, x1, y1)."""
    return torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2],
                       dim=-1)


def nearest_object_labels(pred_boxes: torch.Tensor, presence: torch.Tensor,
                          gt_boxes: torch.Tensor, gt_classes: torch.Tensor,
                          threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Label predicted objects by the class of the nearest ground-truth object.

    Args:
        pred_boxes: ``[B, K, 4]`` inferred boxes in pixels (``decompose(x)["boxes"]``).
        presence: ``[B, K]`` presence probabilities; objects with presence ``> threshold`` count.
        gt_boxes: ``[B, G, 4]`` ground-truth boxes in pixels (padding rows are ignored).
        gt_classes: ``[B, G]`` int classes with ``-1`` marking padding.

    Returns:
        ``(mask, labels)``: ``mask [B, K]`` bool, the objects that got a label, and
        ``labels [B, K]`` int64, the nearest ground-truth class (``-1`` where ``mask`` is False).
        Use ``z_what[mask]`` and ``labels[mask]`` as probe data.
    """
    if pred_boxes.ndim != 3 or pred_boxes.shape[-1] != 4 or presence.shape != pred_boxes.shape[:2]:
        raise GNMError(f"predicted boxes {tuple(pred_boxes.shape)} and presence "
                       f"{tuple(presence.shape)} must be [B, K, 4] and [B, K].")
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4 or gt_classes.shape != gt_boxes.shape[:2]:
        raise GNMError(f"ground-truth boxes {tuple(gt_boxes.shape)} and classes "
                       f"{tuple(gt_classes.shape)} must be [B, G, 4] and [B, G].")
    if gt_boxes.shape[0] != pred_boxes.shape[0]:
        raise GNMError(f"predictions cover {pred_boxes.shape[0]} images but ground truth covers "
                       f"{gt_boxes.shape[0]}; pass the same batch.")
    gt_classes = gt_classes.to(pred_boxes.device)
    valid_gt = gt_classes >= 0                                          # [B, G]
    dist = torch.cdist(box_centres(pred_boxes.float()),
                       box_centres(gt_boxes.to(pred_boxes.device).float()))  # [B, K, G]
    dist = dist.masked_fill(~valid_gt[:, None, :], float("inf"))
    nearest = dist.argmin(dim=-1)                                       # [B, K]
    labels = torch.gather(gt_classes.long(), 1, nearest)
    mask = (presence > threshold) & valid_gt.any(dim=1, keepdim=True)
    labels = torch.where(mask, labels, torch.full_like(labels, -1))
    return mask, labels


class ProbeMLP(nn.Module):
    """The probe: ``Linear(D, hidden) → ReLU → Linear(hidden, n_classes)``."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None,
                   hidden: int = 256, train_fraction: float = 0.8, epochs: int = 100,
                   batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                   device: str | torch.device | None = None, progress: bool = True) -> dict:
    """Train the 2-layer MLP probe on a seeded train split and report its test accuracy.

    Args:
        features: ``[N, D]`` per-object vectors (z_what).
        labels: ``[N]`` int classes in ``[0, n_classes)``.
        n_classes: number of classes (default ``labels.max() + 1``).
        train_fraction: share of the objects used for training; the rest is the test set.

    Returns:
        ``{"accuracy", "ci95", "train_accuracy", "chance", "n_train", "n_test", "n_classes"}``;
        ``accuracy`` is on the test split, ``ci95`` its Wilson interval, ``chance`` the test
        share of the most frequent training class (what a constant guess would score).
    """
    features = torch.as_tensor(features)
    labels = torch.as_tensor(labels).long().reshape(-1)
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise GNMError(f"features {tuple(features.shape)} and labels {tuple(labels.shape)} must "
                       "be [N, D] and [N].")
    if labels.numel() and int(labels.min()) < 0:
        raise GNMError("probe labels must be non-negative; drop unlabelled objects (label -1) "
                       "first, e.g. with the mask from nearest_object_labels.")
    n = labels.shape[0]
    n_train = int(round(train_fraction * n))
    if n_train < 1 or n - n_train < 1:
        raise GNMError(f"{n} labelled objects cannot be split {train_fraction:.0%} / "
                       f"{1 - train_fraction:.0%} into non-empty train and test sets; "
                       "evaluate on more images.")
    n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if int(labels.max()) >= n_classes:
        raise GNMError(f"a label is {int(labels.max())} but n_classes is {n_classes}.")
    device = features.device if device is None else torch.device(device)

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    tr, te = perm[:n_train], perm[n_train:]
    x = features.detach().to("cpu", torch.float32)
    mean, std = x[tr].mean(0), x[tr].std(0, unbiased=False).clamp_min(1e-6)
    x = ((x - mean) / std).to(device)
    y = labels.to(device)
    x_tr, y_tr, x_te, y_te = x[tr.to(device)], y[tr.to(device)], x[te.to(device)], y[te.to(device)]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ProbeMLP(x.shape[1], n_classes, hidden)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(epochs), desc="z_what probe", disable=not progress, leave=False):
        order = torch.randperm(n_train, generator=gen).to(device)
        for start in range(0, n_train, batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    acc = _accuracy(model, x_te, y_te)
    majority = int(torch.bincount(y_tr.cpu(), minlength=n_classes).argmax())
    n_test = n - n_train
    return {"accuracy": acc, "ci95": list(wilson_interval(round(acc * n_test), n_test)),
            "train_accuracy": _accuracy(model, x_tr, y_tr),
            "chance": float((y_te.cpu() == majority).float().mean()),
            "n_train": n_train, "n_test": n_test, "n_classes": n_classes}


def zwhat_probe(z_what: torch.Tensor, pred_boxes: torch.Tensor, presence: torch.Tensor,
                gt_boxes: torch.Tensor, gt_classes: torch.Tensor, threshold: float = 0.5,
                **probe_kwargs) -> dict:
    """The Table 4 classification accuracy from padded batches in one call.

    ``z_what [B, K, D]``, ``pred_boxes [B, K, 4]``, ``presence [B, K]`` (from ``decompose``),
    ``gt_boxes [B, G, 4]``, ``gt_classes [B, G]`` (-1 padding). Extra keyword arguments go to
    :func:`probe_accuracy`. Adds ``n_objects`` (labelled objects used) to its result.
    """
    mask, labels = nearest_object_labels(pred_boxes, presence, gt_boxes, gt_classes, threshold)
    if z_what.shape[:2] != mask.shape:
        raise GNMError(f"z_what {tuple(z_what.shape)} does not match the boxes' [B, K] = "
                       f"{tuple(mask.shape)}.")
    feats, labs = z_what[mask.to(z_what.device)], labels[mask]
    probe_kwargs.setdefault("n_classes", 10)
    result = probe_accuracy(feats, labs, **probe_kwargs)
    result["n_objects"] = int(mask.sum())
    return result
