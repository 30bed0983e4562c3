"""Structure-source routes: each route's images come from the link it names (a stub model
whose links give known scenes), the judged S-Acc per route, and shapes on a tiny real GNM."""

from __future__ import annotations

import pytest
import torch

from gnm.data.scenes import SceneGenerator
from gnm.errors import GNMError
from gnm.eval import sources as S
from gnm.eval.corrupt import corrupted_batch
from gnm.models.config import ModelConfig
from gnm.models.gnm import GNM
from tests.test_eval_judge import IntensityClassifier
from tests.test_gnm import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _float(images) -> torch.Tensor:
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


class Stub:
    """Posterior z_g = scene index (>= 0), prior z_g = -1. ``generate`` decodes an index to the
    real scene, -1 to black; ``resample_structure`` gives the corrupted (wrong-order) scene
    for an index and black for -1; ``reconstruct`` is the identity."""

    def __init__(self, x: torch.Tensor, bad: torch.Tensor) -> None:
        self.good, self.bad, self.gens = x, bad, []

    def encode_global(self, xb):  # xb is a batch slice of x: its offset gives the index
        first = (xb.data_ptr() - self.good.data_ptr()) // (self.good[0].numel() * 4)
        return torch.arange(first, first + len(xb)).float().unsqueeze(1)

    def sample_global(self, n, generator=None):
        self.gens.append(generator)
        return torch.full((n, 1), -1.0)

    def _pick(self, z, table):
        return torch.stack([table[int(i)] if i >= 0 else torch.zeros_like(table[0])
                            for i in z[:, 0]])

    def generate(self, z):
        return self._pick(z, self.good)

    def resample_structure(self, z, n, generator=None):
        return self._pick(z, self.bad).unsqueeze(1).repeat(1, n, 1, 1, 1)

    def reconstruct(self, x):
        return x.clone()


def test_routes_take_the_link_they_name(fake_mnist):
    gen = SceneGenerator("mnist4", "test", 64, seed=0, mnist=fake_mnist)
    x = _float(gen.batch(range(40))[0])
    stub = Stub(x, _float(corrupted_batch(gen, list(range(40)), "wrong_order")))
    r = S.structure_sources(stub, x, "mnist4", batch_size=16, classifier=IntensityClassifier())
    acc = {k: v["sacc"] for k, v in r["routes"].items()}
    assert acc == {"real": 1.0, "reconstruction": 1.0, "posterior_mode": 1.0,
                   "posterior_sampled": 0.0, "prior_mode": 0.0, "prior_sampled": 0.0}
    assert r["n"] == 40 and r["routes"]["prior_mode"]["reasons"] == {"wrong_count": 40}
    assert all(g is stub.gens[0] for g in stub.gens) and len(stub.gens) == 3  # one generator
    table = S.sources_table(r)
    assert table.count("\n") == 1 + len(S.ROUTES) and "| posterior_mode | 1.000 |" in table


def test_route_images_on_a_tiny_gnm_are_seeded_and_shaped():
    model = GNM(ModelConfig(**TINY), size=32).eval()
    x = torch.rand(5, 1, 32, 32)
    a = S.route_images(model, x, seed=3, batch_size=2)
    b = S.route_images(model, x, seed=3, batch_size=2)
    assert set(a) == set(S.ROUTES)
    for name in S.ROUTES:
        assert a[name].shape == (5, 1, 32, 32), name
        assert 0 <= a[name].min() and a[name].max() <= 1
        assert torch.equal(a[name], b[name]), name
    assert torch.equal(a["real"], x)


def test_route_errors():
    with pytest.raises(GNMError, match="computing the structure-source routes needs a model "
                       "that can reconstruct scenes, but it has no reconstruct method"):
        S.route_images(object(), torch.rand(2, 1, 8, 8))
    with pytest.raises(GNMError, match="N >= 1"):
        S.route_images(GNM(ModelConfig(**TINY), size=32), torch.rand(0, 1, 32, 32))


def test_routes_are_judged_by_the_datasets_own_judge_arrow_room():
    """The Arrow Room has its own judge: real scenes pass, the three-alike corruption fails
    with that judge's verdict (the routes are not judged as digits)."""
    from gnm.data.arrow_corrupt import corrupted_batch as arrow_corrupted
    from gnm.data.arrow_room import ArrowRoomGenerator

    def rgb(images) -> torch.Tensor:
        return torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2).contiguous()

    gen = ArrowRoomGenerator("val", 64, seed=11)
    x = rgb(gen.batch(range(20))[0])
    stub = Stub(x, rgb(arrow_corrupted(gen, range(20), "three_alike")[0]))
    r = S.structure_sources(stub, x, "arrow", batch_size=10)
    acc = {k: v["sacc"] for k, v in r["routes"].items()}
    assert acc["real"] >= 0.9 and acc["posterior_mode"] == acc["real"]
    assert acc["posterior_sampled"] <= 0.1 and acc["prior_mode"] == 0.0
    assert r["routes"]["posterior_sampled"]["reasons"].get("three_alike", 0) >= 15


def test_a_dataset_without_a_judge_is_refused_before_any_image_is_made():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name}) before the dataset was checked")

    with pytest.raises(GNMError, match="needs a dataset with an S-Acc judge"):
        S.structure_sources(Untouchable(), torch.zeros(2, 1, 8, 8), "nosuchdata")
