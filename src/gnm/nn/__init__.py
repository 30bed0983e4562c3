"""Reusable neural-network blocks (conv + layer norm + CELU stacks, sub-pixel decoders, MLPs,
ConvLSTM). Model files compose these; nothing here knows about GNM's latents."""

from gnm.nn.blocks import (
    MLP,
    ConvStack,
    SubPixelConv,
    SubPixelDecoder,
    conv_norm,
    count_parameters,
)
from gnm.nn.convlstm import ConvLSTMCell

__all__ = ["MLP", "ConvLSTMCell", "ConvStack", "SubPixelConv", "SubPixelDecoder", "conv_norm",
           "count_parameters"]
