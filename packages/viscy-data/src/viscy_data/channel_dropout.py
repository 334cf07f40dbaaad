"""Per-sample channel dropout for batched ``(B, C, ...)`` image tensors."""

import torch
from torch import Tensor, nn


class ChannelDropout(nn.Module):
    """Zero listed channels independently per sample, with probability ``p``, in training mode.

    Intended to run on the device after the batched augmentations of ``on_after_batch_transfer``.
    The mask is drawn on the input's device, so no host synchronisation happens on CUDA tensors.

    Parameters
    ----------
    channels : list[int]
        Channel indices (dim 1) that may be dropped; each is drawn independently.
    p : float
        Probability of dropping a listed channel of one sample, in ``[0, 1]``.
    """

    def __init__(self, channels: list[int], p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"ChannelDropout probability p must be in [0, 1], got {p}.")
        self.channels = list(channels)
        self.p = p

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return ``x`` with dropped channels zeroed (a new tensor), or ``x`` itself when inactive.

        Parameters
        ----------
        x : Tensor
            Batch of shape ``(B, C, ...)``, e.g. ``(B, C, Z, Y, X)``.
        generator : torch.Generator | None
            Generator on ``x``'s device to draw the mask from (reproducible dropout); default: torch's
            global generator.

        Returns
        -------
        Tensor
            Same shape, dtype and device as ``x``.
        """
        if not self.training or self.p == 0.0 or not self.channels:
            return x
        if max(self.channels) >= x.shape[1] or min(self.channels) < -x.shape[1]:
            raise IndexError(f"ChannelDropout channels {self.channels} out of range for {x.shape[1]} channels.")
        # the mask is drawn on x's device and applied by slicing: no host-device copy or sync
        drop = torch.rand(x.shape[0], len(self.channels), device=x.device, generator=generator) < self.p
        drop = drop.view(*drop.shape, *([1] * (x.ndim - 2)))
        out = x.clone()
        for j, channel in enumerate(self.channels):
            out[:, channel].masked_fill_(drop[:, j], 0)
        return out
