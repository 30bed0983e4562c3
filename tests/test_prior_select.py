"""Choosing the mixture's K by the cycle rule (gnm/models/prior_select.py): the rule and the
cycle error by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnm.errors import GNMError
from gnm.models.prior_select import CYCLE_FACTOR, choose_k, cycle_errors


def _stats(**per_k: tuple[float, float]) -> dict[int, dict[str, float]]:
    return {int(k[1:]): {"cycle": c, "near_copy": r} for k, (c, r) in per_k.items()}


def test_the_rule_takes_the_smallest_k_close_to_the_floor():
    s = _stats(k10=(0.32, 0.0), k20=(0.235, 0.0), k50=(0.18, 0.0))
    assert CYCLE_FACTOR == 1.5
    assert choose_k(s, floor=0.135, real_copy=0.0) == 50  # 1.5 * 0.135 = 0.2025
    assert choose_k(s, floor=0.16, real_copy=0.0) == 20  # 0.24 admits K = 20
    assert choose_k(s, floor=0.3, real_copy=0.0) == 10
    assert choose_k(s, floor=0.135, real_copy=0.0, factor=2.0) == 20


def test_copying_mixtures_are_dropped_and_the_best_of_the_rest_wins():
    s = _stats(k10=(0.32, 0.0), k20=(0.235, 0.005), k50=(0.18, 0.2))
    assert choose_k(s, floor=0.135, real_copy=0.0) == 20  # K=50 copies; none is close: lowest
    assert choose_k(s, floor=0.135, real_copy=0.0, copy_slack=0.001) == 10
    assert choose_k(s, floor=0.135, real_copy=0.19) == 50  # held-out scenes are as close
    with pytest.raises(GNMError, match="copies training scenes more often"):
        choose_k(_stats(k5=(0.1, 0.5)), floor=0.1, real_copy=0.0)
    with pytest.raises(GNMError, match="at least one K"):
        choose_k({}, floor=0.1, real_copy=0.0)


class _Halver(nn.Module):
    """generate: z [N, 4] -> image [N, 1, 2, 2] = z / 2; encode_global: image -> its pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return (z / 2).view(-1, 1, 2, 2)

    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_cycle_error_by_hand():
    z = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 3.0, 4.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    scale = torch.tensor([1.0, 2.0, 2.0, 4.0])  # norm 5
    err, images = cycle_errors(_Halver(), z, scale, batch_size=2)
    # E(G(z)) - z = -z / 2, so e = |z| / 2 / 5
    torch.testing.assert_close(err, torch.tensor([0.2, 0.5, 0.2]))
    torch.testing.assert_close(images, (z / 2).view(3, 1, 2, 2))


def test_fit_prior_refuses_an_unknown_rule_before_any_work(tmp_path):
    from gnm.models.aggregate_prior import fit_prior

    with pytest.raises(GNMError, match="--select 'bic' is not known; choose cycle, heldout"):
        fit_prior(tmp_path / "nothing.safetensors", select="bic")
