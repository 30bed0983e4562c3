"""A density fitted to the aggregate posterior of z_g: sampling beyond the paper's prior.

GNM's prior samples break the scene rule where p(z_g) puts mass that no q(z_g|x) has; the
decoder itself keeps the rule (decoded posteriors follow it). Fitting a density to the
posterior means of training scenes and decoding its samples with ``generate`` samples where
the data are. This is *not* the paper's model: results with it are labelled "aggregate
posterior (GMM)" and never mixed into the "GNM prior samples" rows.

The density is a full-covariance Gaussian mixture from scikit-learn (an optional dependency:
``pip install 'gnm[prior]'``), its number of components K chosen by where its draws land
(the cycle rule of :mod:`gnm.models.prior_select`; held-out log-likelihood, which prefers
mixtures that fill the hole, on request);
it is stored as safetensors (``weights [K]``, ``means [K, D]``, ``scale_tril [K, D, D]``, the
Cholesky factors of the covariances) beside the model: ``RUN/priors/gmm.safetensors`` for a
run directory, ``WEIGHTS.gmm.safetensors`` for a weights file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gnm.data.registry import build_dataset, stack_images
from gnm.errors import GNMError
from gnm.io import atomic_write_bytes, check_writable
from gnm.models.base import require

KINDS = ("gmm",)
SELECT = ("cycle", "heldout")  # how fit-prior chooses the number of components


class MixturePrior:
    """A Gaussian mixture over z_g ``[D]``: ``weights [K]`` (sum 1), ``means [K, D]``,
    ``scale_tril [K, D, D]`` (lower-triangular, covariance = L·Lᵀ)."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor,
                 info: dict[str, Any] | None = None) -> None:
        self.weights, self.means, self.scale_tril = weights, means, scale_tril
        self.info = dict(info or {})

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` draws ``[n, D]``: a component by its weight, then its mean plus
        ``temperature`` times its scale times standard normal noise."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, 1, generator=generator, dtype=self.means.dtype)
        return self.means[k] + temperature * (self.scale_tril[k] @ eps)[..., 0]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density ``[N]`` of ``z [N, D]`` (nats)."""
        comps = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        return torch.logsumexp(comps.log_prob(z[:, None]) + self.weights.log(), dim=1)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save

        path = Path(path)
        tensors = {"weights": self.weights.contiguous(), "means": self.means.contiguous(),
                   "scale_tril": self.scale_tril.contiguous()}
        meta = {"format": "gnm-prior", "kind": "gmm", "info": json.dumps(self.info)}
        atomic_write_bytes(path, save(tensors, metadata=meta))
        return path

    @classmethod
    def load(cls, path: str | Path) -> MixturePrior:
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise GNMError(f"{path} does not exist; fit it first with gnm fit-prior.")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            return cls(tensors["weights"], tensors["means"], tensors["scale_tril"],
                       json.loads(meta.get("info", "{}")))
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
            raise GNMError(f"{path} is not a gnm prior file ({exc}); fit it again with gnm "
                           "fit-prior.") from exc


def check_kind(kind: str, option: str = "--kind") -> str:
    """``kind`` if it is a known density (:data:`KINDS`); else one sentence naming ``option``."""
    if kind not in KINDS:
        raise GNMError(f"{option} {kind!r} is not known; choose {', '.join(KINDS)}.")
    return kind


def load_prior(model_path: str | Path, kind: str = "gmm", option: str = "--prior"
               ) -> MixturePrior:
    """The ``kind`` density that ``gnm fit-prior`` stored beside the model at ``model_path``."""
    return MixturePrior.load(prior_path(model_path, check_kind(kind, option)))


def prior_path(model_path: str | Path, kind: str = "gmm") -> Path:
    """Where the ``kind`` prior of the model at ``model_path`` is stored."""
    p = Path(model_path)
    if p.is_dir():
        return p / "priors" / f"{kind}.safetensors"
    return p.with_name(f"{p.stem}.{kind}.safetensors")


def _check_ks(ks: tuple[int, ...]) -> None:
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise GNMError(f"component counts must be integers >= 1, got {list(ks)}.")


def _sklearn_mixture(k: int, seed: int) -> Any:
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as exc:
        raise GNMError("fitting a GMM prior needs scikit-learn: pip install 'gnm[prior]' (or "
                       "pip install scikit-learn).") from exc
    return GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-5,
                           max_iter=300)


def fit_gmm_k(z: np.ndarray, k: int, seed: int = 0) -> MixturePrior:
    """A full-covariance Gaussian mixture of ``k`` components fitted to all rows of
    ``z [N, D]`` (scikit-learn's EM, ``reg_covar`` 1e-5)."""
    _check_ks((k,))
    z = np.asarray(z, np.float64)
    if len(z) < 2 * k:
        raise GNMError(f"{len(z)} latents are too few to fit {k} components; encode more "
                       "training scenes (--n).")
    gmm = _sklearn_mixture(k, seed).fit(z)
    f32 = torch.float32
    tril = torch.linalg.cholesky(torch.tensor(gmm.covariances_, dtype=torch.float64)).to(f32)
    return MixturePrior(torch.tensor(gmm.weights_, dtype=f32), torch.tensor(gmm.means_, dtype=f32),
                        tril, {"kind": "gmm", "k": k, "n_fit": len(z), "seed": seed})


def fit_gmm(z: np.ndarray, ks: tuple[int, ...] = (10, 20, 50), seed: int = 0,
            folds: int = 3) -> MixturePrior:
    """A full-covariance Gaussian mixture fitted to ``z [N, D]``. Each K of ``ks`` is scored
    by its mean held-out log-likelihood per row over ``folds``-fold cross-validation; the best
    K is then fitted on all rows (``info["held_out_ll"]`` lists every K's score)."""
    _sklearn_mixture(1, seed)  # scikit-learn is there, before any work
    _check_ks(ks)
    z = np.asarray(z, np.float64)
    if folds < 2 or len(z) * (folds - 1) / folds < max(ks) * 2:
        raise GNMError(f"{len(z)} latents are too few to fit up to {max(ks)} components with "
                       f"{folds}-fold validation; encode more training scenes (--n).")
    parts = np.array_split(np.random.default_rng(seed).permutation(len(z)), folds)
    scores = {}
    for k in ks:
        held = [_sklearn_mixture(k, seed).fit(z[np.concatenate(parts[:i] + parts[i + 1:])])
                .score(z[part]) for i, part in enumerate(parts)]
        scores[k] = float(np.mean(held))
    best = max(scores, key=scores.get)
    prior = fit_gmm_k(z, best, seed)
    prior.info.update(select="heldout", folds=folds,
                      held_out_ll={str(k): v for k, v in scores.items()})
    return prior


@torch.no_grad()
def encode_training_latents(model: Any, cfg: Any, n: int, batch_size: int = 100,
                            progress: bool = True) -> torch.Tensor:
    """Posterior means of z_g ``[n, D]`` for the first ``n`` training scenes of ``cfg.data``
    (scene i is a function of the data seed and i, so they can be rebuilt)."""
    data = build_dataset(cfg.data, "train")
    device = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, n, batch_size), desc="encoding training scenes", disable=not progress):
        x = stack_images(data, range(i, min(n, i + batch_size)))
        out.append(model.encode_global(x.to(device)).float().cpu())
    return torch.cat(out)


def fit_prior(model_path: str | Path, kind: str = "gmm", n: int = 5000,
              ks: tuple[int, ...] = (10, 20, 50), seed: int = 0,
              progress: bool = True, select: str = "cycle") -> tuple[Path, MixturePrior]:
    """``gnm fit-prior``: fit a ``kind`` density to the posterior means of ``n`` training
    scenes of the model at ``model_path`` and store it beside the model (:func:`prior_path`).
    ``select`` chooses K among ``ks``: ``"cycle"`` (default) by where the mixture's draws land
    (:mod:`gnm.models.prior_select`), ``"heldout"`` by 3-fold held-out log-likelihood."""
    from gnm.train.checkpoint import load_model_and_config

    check_kind(kind)
    if select not in SELECT:
        raise GNMError(f"--select {select!r} is not known; choose {', '.join(SELECT)}.")
    if n < 100:
        raise GNMError(f"--n {n} is too few training scenes to fit a density; use >= 100.")
    _check_ks(ks)
    model, cfg = load_model_and_config(model_path)
    require(model, "resample_structure", "gnm fit-prior")
    path = prior_path(model_path, kind)
    check_writable(path.parent)  # before the work
    z = encode_training_latents(model, cfg, n, progress=progress)
    if select == "cycle":
        from gnm.models.prior_select import fit_gmm_by_cycle

        prior = fit_gmm_by_cycle(model, cfg, z, ks, seed=seed, progress=progress)
    else:
        prior = fit_gmm(z.numpy(), ks=ks, seed=seed)
    prior.info.update(source=str(model_path), n_scenes=n, data_seed=cfg.data.seed,
                      dataset=cfg.data.dataset)
    return prior.save(path), prior
