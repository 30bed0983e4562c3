"""The traversal pictures vary the latent dimensions that carry information."""

from __future__ import annotations

import pytest
import torch

from gnm.demo import default_model_path
from gnm.errors import GNMError
from gnm.train.checkpoint import load_model
from gnm.viz.figures import choose_traversals, global_traversal, informative_dim, object_traversal


def test_informative_dim_by_hand():
    z = torch.tensor([[0.0, 1.0, 5.0], [0.1, 3.0, 5.0], [-0.1, 5.0, 5.0]])  # stds .1, 2, 0
    dim, values = informative_dim(z, span=2.0, steps=5)
    assert dim == 1
    torch.testing.assert_close(values, torch.tensor([-1.0, 1.0, 3.0, 5.0, 7.0]))
    with pytest.raises(GNMError, match="M >= 2"):
        informative_dim(z[:1])


@pytest.fixture(scope="module")
def bundled():
    torch.manual_seed(0)
    model = load_model(default_model_path())
    with torch.no_grad():
        x = model.sample(12, generator=torch.Generator().manual_seed(1))
    return model, x


def _column_change(grid_rows: torch.Tensor) -> float:
    """Mean |first column - last column| of a traversal ``[V, B, C, H, W]`` (pixel units)."""
    return float((grid_rows[0] - grid_rows[-1]).abs().mean())


def test_traversal_rows_change_the_image(bundled):
    """Dimension 0 of the bundled model's z_what and z_g is unused (a row of 8 equal pictures);
    the chosen dimensions change the picture by far more."""
    model, x = bundled
    t = choose_traversals(model, x)
    assert t.what_dim != 0 and t.global_dim != 0
    cell = int(torch.argmax(model.decompose(x[:1])["pres_prob"][0]))
    chosen = _column_change(model.traverse_object(x[:1], cell, "what", t.what_dim,
                                                  t.what_values))
    unused = _column_change(model.traverse_object(x[:1], cell, "what", 0,
                                                  torch.linspace(-2.5, 2.5, 8)))
    assert chosen > 0.002 and chosen > 10 * unused
    z = model.encode_global(x[:4])
    chosen = _column_change(model.traverse_global(z, t.global_dim, t.global_values))
    unused = _column_change(model.traverse_global(z, 0, torch.linspace(-2.5, 2.5, 8)))
    assert chosen > 0.005 and chosen > 10 * unused
    # the picture functions draw exactly these rows
    pic = global_traversal(model, z, t.global_dim, t.global_values)
    assert pic.shape[0] > pic.shape[1] / 8 * 3  # 4 rows of 8
    pic = object_traversal(model, x[:1], "what", t.what_dim, t.what_values)
    assert pic.std() > 0


def test_component_samples_leave_out_components_blank_in_every_row():
    from gnm.viz.figures import component_samples

    class Parts(torch.nn.Module):
        """Two samples of 3 components; component 1 is blank in both."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def sample_components(self, n, generator=None):
            comps = torch.zeros(n, 3, 1, 4, 4)
            comps[0, 0, :, 0, 0] = 1.0
            comps[1, 2, :, 3, 3] = 0.5
            return {"images": comps.sum(1), "components": comps}

    full = component_samples(Parts(), n=2, drop_empty=False)
    kept = component_samples(Parts(), n=2)
    assert full.shape[1] == 2 + 4 * 6 and kept.shape[1] == 2 + 3 * 6  # 1 + K tiles of 4 + 2 pad
    tile = lambda pic, r, c: pic[2 + r * 6:6 + r * 6, 2 + c * 6:6 + c * 6, 0]  # noqa: E731
    assert tile(kept, 0, 1)[0, 0] == 255 and tile(kept, 1, 2)[3, 3] == 128  # comps 0 and 2
