"""The model contract: what the trainer, ``gnm eval``, the figures and the demo may call.

A model is a ``torch.nn.Module`` registered with
:func:`gnm.models.registry.register_model` together with its config dataclass. It is built as
``cls(cfg, size=S, channels=C)``: ``cfg`` is that dataclass (the ``model`` section of a
:class:`gnm.config.Config`, whose ``name`` field names the model), ``S`` and ``C`` the image
side (px) and channels of the data section (``data.size``, ``data.channels``). A model keeps
them as ``model.img_size`` and ``model.channels``.

Required:

``forward(x, step) -> dict``
    ``x [B, C, H, W]`` in [0, 1], ``step`` the training step (schedules are functions of it).
    Keys: ``loss`` (the scalar to minimise), ``elbo`` and ``recon_ll`` (scalars: batch means
    of nats per image), one ``kl_<name>`` per KL term (scalar, nats per image) and ``recon``
    (``[B, C, H, W]``, the reconstruction). ``elbo = recon_ll - sum of the KL terms named in
    the class attribute ``elbo_kls`` (default: every ``kl_*`` key; GNM also reports the parts
    of its structure KL). Other scalar entries are logged too.

Optional capabilities (test with :func:`supports`, never with ``hasattr``):

``sample``                ``sample(n, generator=None, temperature=1.0) -> [n, C, H, W]`` in
                          [0, 1]: prior samples (S-Acc, D-Steps, FD, ``gnm sample``).
``decompose``             ``decompose(x) -> dict`` with the keys the model has among
                          ``boxes [B, K, 4]`` (pixels, x0 y0 x1 y1), ``presence [B, K]``,
                          ``masks``, ``components``, ``z_what [B, K, D]`` (AP, the z_what
                          probe, the decomposition figure).
``log_importance_weight`` ``log_importance_weight(x) -> [B]``: ``log p(x, z) - log q(z|x)``
                          for one draw of ``z ~ q(z|x)`` (importance-sampled LL).
``traverse_object``       ``traverse_object(x, cell, field, dim, values) -> [V, B, C, H, W]``
``traverse_global``       ``traverse_global(z_g, dim, values) -> [V, B, C, H, W]`` (with
                          ``encode_global(x) -> z_g``): the latent traversal figures.
``reconstruct``           ``reconstruct(x) -> [B, C, H, W]``: the posterior-mean reconstruction.
``resample_structure``    ``resample_structure(z_g, n, generator) -> [B, n, C, H, W]``,
                          ``sample_global(n, generator) -> z_g``, ``encode_global(x)``,
                          ``generate(z_g)``: symbolic structure given the global latent.
``sample_components``     ``sample_components(n, generator=None) -> dict`` with ``images
                          [n, C, H, W]`` and ``components [n, K, C, H, W]`` (the parts that
                          add up to each sample): component-wise generation (paper Fig. 3).

A model may implement a capability's method and still lack it (e.g. a model whose prior has no
density): it then lists the name in ``lacks`` (a class attribute), with the reason in
``lacks_why``. Every consumer asks :func:`supports` and skips a section with one line naming
the capability and the reason (:func:`why_not`); :func:`require` turns a request from the CLI
into one sentence.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gnm.errors import GNMError

#: capability -> methods it needs
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "sample": ("sample",),
    "decompose": ("decompose",),
    "log_importance_weight": ("log_importance_weight",),
    "traverse_object": ("traverse_object",),
    "traverse_global": ("traverse_global", "encode_global"),
    "reconstruct": ("reconstruct",),
    "resample_structure": ("resample_structure", "sample_global", "encode_global", "generate"),
    "sample_components": ("sample_components",),
}
#: what each capability gives a user (for messages)
PURPOSE = {
    "sample": "draw prior samples",
    "decompose": "decompose scenes into objects",
    "log_importance_weight": "estimate log-likelihoods",
    "traverse_object": "traverse object latents",
    "traverse_global": "traverse the global latent",
    "reconstruct": "reconstruct scenes",
    "resample_structure": "resample the structure of a scene given its global latent",
    "sample_components": "draw prior samples component by component",
}
#: keys every model's forward output must have
FORWARD_KEYS = ("loss", "elbo", "recon_ll", "recon")


def _check(capability: str) -> None:
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model) if isinstance(model, nn.Module) else model


def supports(model: Any, capability: str) -> bool:
    """Whether ``model`` (or the module a DDP wrapper holds) has ``capability`` (a key of
    :data:`CAPABILITIES`)."""
    _check(capability)
    m = _unwrap(model)
    if capability in getattr(m, "lacks", ()):
        return False
    return all(callable(getattr(m, name, None)) for name in CAPABILITIES[capability])


def why_not(model: Any, capability: str) -> str:
    """One line saying why ``model`` lacks ``capability`` ('' if it has it)."""
    if supports(model, capability):
        return ""
    m = _unwrap(model)
    reason = getattr(m, "lacks_why", {}).get(capability)
    if reason is None:
        missing = [n for n in CAPABILITIES[capability] if not callable(getattr(m, n, None))]
        reason = f"it has no {', '.join(missing)} method"
    return f"model {type(m).__name__} cannot {PURPOSE[capability]}: {reason}"


def require(model: Any, capability: str, what: str) -> None:
    """Raise a GNMError (one sentence) unless ``model`` has ``capability``; ``what`` names the
    request, e.g. ``"gnm sample"``."""
    if not supports(model, capability):
        raise GNMError(f"{what} needs a model that can {PURPOSE[capability]}, but "
                       f"{why_not(model, capability).split(': ', 1)[1]} "
                       f"(model {type(_unwrap(model)).__name__}).")


def check_forward(out: Any) -> dict[str, Any]:
    """The forward output if it holds :data:`FORWARD_KEYS`; else a GNMError naming the
    missing keys."""
    if not isinstance(out, dict):
        raise GNMError(f"a model's forward(x, step) must return a dict, got "
                       f"{type(out).__name__}.")
    missing = [k for k in FORWARD_KEYS if k not in out]
    if missing:
        raise GNMError(f"the model's forward output lacks {', '.join(missing)}; a model's "
                       "forward(x, step) must return loss, elbo, recon_ll, kl_* terms and recon "
                       "(see gnm/models/base.py).")
    return out


def check_images(model: Any, x: Any) -> None:
    """Raise a GNMError (one sentence) unless ``x`` is a batch ``[B, C, H, W]`` of the images
    ``model`` was built for (``model.channels``, ``model.img_size``)."""
    want = (model.channels, model.img_size, model.img_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != want:
        raise GNMError(f"{type(_unwrap(model)).__name__} expects images [B, {want[0]}, {want[1]}, "
                       f"{want[2]}], got {list(x.shape)}; set data.size and data.channels to "
                       "match.")
