"""gnm: Generative Neurosymbolic Machines (Jiang & Ahn, NeurIPS 2020) in PyTorch."""

from typing import Any

from gnm.errors import GNMError

__version__ = "0.1.0"
__all__ = ["GNMError", "__version__", "build_model", "load_model"]


def build_model(preset_or_config: Any = None, **overrides: Any):
    """Build a model from a preset name or config; see :func:`gnm.models.registry.build_model`.

    Imported lazily so ``import gnm`` stays light.
    """
    from gnm.models.registry import build_model as _build

    return _build(preset_or_config, **overrides)


def load_model(path: Any, device: Any = "cpu"):
    """A trained model (eval mode) from a run directory, checkpoint or .safetensors file;
    see :func:`gnm.train.checkpoint.load_model`. Loading never executes code."""
    from gnm.train.checkpoint import load_model as _load

    return _load(path, device=device)
