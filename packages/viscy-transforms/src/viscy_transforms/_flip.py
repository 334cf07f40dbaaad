"""Random flips of batched tensors with an independent coin per sample and axis."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform

__all__ = ["BatchedRandFlip", "BatchedRandFlipd"]


class BatchedRandFlip(BatchedRandomTransform):
    """Flip each sample along each of ``spatial_axes`` with probability ``prob`` (independent coins).

    Parameters
    ----------
    spatial_axes : int | Sequence[int]
        Spatial axes (0 = first spatial dim, i.e. Z of ``(B, C, Z, Y, X)`` and Y of a 2-D ``(B, C, Y, X)``).
    prob : float
        Probability of flipping a sample along one axis.
    """

    channel_independent = True

    def __init__(self, spatial_axes: int | Sequence[int], prob: float = 0.5) -> None:
        super().__init__(prob)
        self.spatial_axes = [spatial_axes] if isinstance(spatial_axes, int) else list(spatial_axes)
        self._flips: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        """Draw a ``(B, n_axes)`` table of flip decisions."""
        spatial_ndim = img.ndim - 2
        if any(not -spatial_ndim <= axis < spatial_ndim for axis in self.spatial_axes):
            raise ValueError(
                f"spatial_axes {self.spatial_axes} out of range for image shape {tuple(img.shape)} with "
                f"{spatial_ndim} spatial axes (a 2-D batch (B, C, Y, X) takes spatial_axes within (0, 1))"
            )
        self.draw_selected(img.shape[0])
        self._flips = self.R.random_sample((img.shape[0], len(self.spatial_axes))) < self.prob

    def apply(self, img: Tensor) -> Tensor:
        """Flip the samples whose coin came up; returns ``img`` itself if nothing flips."""
        if not self._flips.any():
            return img
        out = img
        view = (-1,) + (1,) * (img.ndim - 1)
        for column, axis in enumerate(self.spatial_axes):
            if self._flips[:, column].any():
                mask = torch.as_tensor(self._flips[:, column], device=img.device).view(view)
                out = torch.where(mask, out.flip(axis % (img.ndim - 2) + 2), out)
        return out


class BatchedRandFlipd(BatchedRandDict):
    """Dictionary version of :class:`BatchedRandFlip`; keys of a sample are flipped identically."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        spatial_axes: Sequence[int] | int = (0, 1, 2),
        prob: float = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, BatchedRandFlip(spatial_axes, prob), allow_missing_keys)
