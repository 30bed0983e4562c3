"""gnm: Generative Neurosymbolic Machines (Jiang & Ahn, NeurIPS 2020) in PyTorch."""

from gnm.errors import GNMError

__version__ = "0.1.0"
__all__ = ["GNMError", "__version__"]
