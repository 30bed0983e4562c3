"""D-Steps sanity checks on small fake-MNIST scenes (32 px, tiny caps so the tests stay fast)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gnm.data.scenes import SceneGenerator
from gnm.errors import GNMError
from gnm.eval.discriminability import DStepsCNN, d_steps


@pytest.fixture(scope="module")
def scenes(fake_mnist) -> torch.Tensor:
    """400 MNIST-4 scenes made at 32 px, pooled to 16 px: float [400, 1, 16, 16] in [0, 1]."""
    images, _ = SceneGenerator("mnist4", "train", size=32, seed=0, mnist=fake_mnist).batch(
        range(400))
    return F.avg_pool2d(torch.from_numpy(images).float().div(255.0).unsqueeze(1), 2)


def test_classifier_handles_any_size_and_channels():
    for shape in [(2, 1, 16, 16), (2, 3, 64, 48), (2, 1, 128, 128)]:
        assert DStepsCNN(shape[1])(torch.rand(shape)).shape == (2,)


def test_real_vs_real_never_reaches_target(scenes):
    out = d_steps(scenes[:200], scenes[200:], seeds=(0,), cap=60, eval_every=20, n_eval=100,
                  progress=False)
    assert out["steps"] == [60] and out["capped"] == [True] and out["any_capped"]
    assert out["mean"] == 60 and out["std"] == 0.0
    assert all(acc < 0.9 for _, acc in out["curves"][0])
    assert [step for step, _ in out["curves"][0]] == [20, 40, 60]


def test_real_vs_inverted_is_found_fast_for_every_seed(scenes):
    out = d_steps(scenes[:200], 1.0 - scenes[200:], seeds=(0, 1, 2), cap=200, eval_every=10,
                  n_eval=100, progress=False)
    assert out["capped"] == [False, False, False] and not out["any_capped"]
    assert max(out["steps"]) <= 50
    assert all(acc >= 0.9 for acc in out["accuracy"])
    assert out["protocol"]["cap"] == 200 and out["seeds"] == [0, 1, 2]


def test_deterministic_given_seed_and_uint8_input(scenes):
    real = (scenes[:200] * 255).round().to(torch.uint8)
    fake = torch.rand(200, 1, 16, 16)
    kw = dict(seeds=(3,), cap=20, eval_every=10, n_eval=50, progress=False)
    a = d_steps(real, fake, **kw)
    b = d_steps(real, fake, **kw)
    assert a["curves"] == b["curves"]


def test_errors_are_clear(scenes):
    with pytest.raises(GNMError, match="differ in shape"):
        d_steps(scenes, torch.rand(400, 1, 8, 8), progress=False)
    with pytest.raises(GNMError, match="n_eval"):
        d_steps(scenes[:100], scenes[100:], n_eval=250, progress=False)
    with pytest.raises(GNMError, match="4-D"):
        d_steps(scenes[:, 0], scenes[:, 0], progress=False)
