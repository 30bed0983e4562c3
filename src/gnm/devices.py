"""Check a ``--device`` before any work: one sentence when it does not exist on this machine."""

from __future__ import annotations

import torch

from gnm.errors import GNMError


def check_device(device: str | torch.device, option: str = "--device") -> torch.device:
    """``device`` as a :class:`torch.device` if this machine has it.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` (or a ``torch.device``).
        option: how the setting is named in the message (``--device``, ``train.device``).

    Raises:
        GNMError: for a device name torch does not know, a GPU that torch cannot see (no CUDA
            build, no driver, no GPU, or index N beyond the GPUs present), or a device type
            gnm does not run on.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise GNMError(f"{option} {device!r} is not a device name; use cpu, cuda or cuda:N."
                       ) from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise GNMError(f"{option} {device} is not supported; use cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "torch sees no CUDA GPU (driver or CUDA_VISIBLE_DEVICES)")
        instead = f"{option} cpu" if option.startswith("--") else "cpu"
        raise GNMError(f"{option} {device} needs a GPU but {why}; use {instead}.")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise GNMError(f"{option} {device} asks for GPU {dev.index} but this machine has "
                       f"{count} (cuda:0..cuda:{count - 1}); pick one of those or use cpu.")
    return dev
