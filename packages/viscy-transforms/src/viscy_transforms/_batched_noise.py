"""Gaussian noise drawn by torch on the data's device, per sample of a batch (imports no MONAI)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, device_generator, output_dtype

__all__ = ["BatchedRandGaussianNoise", "BatchedRandGaussianNoised"]


class BatchedRandGaussianNoise(BatchedRandomTransform):
    """Add Gaussian noise with an independent coin, standard deviation and noise field per sample.

    Parameters
    ----------
    prob : float
        Probability that a sample is noised.
    mean : float
        Mean of the noise.
    std : float
        Standard deviation (per-sample ``U(0, std)`` if ``sample_std``).
    dtype : DTypeLike
        Output data type (None keeps the input's floating dtype).
    sample_std : bool
        Draw each sample's standard deviation from ``U(0, std)``.
    """

    def __init__(
        self,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: Any = np.float32,
        sample_std: bool = True,
    ) -> None:
        super().__init__(prob)
        if std < 0:
            raise ValueError(f"std must be non-negative, got {std}")
        self.mean = mean
        self.std = std
        self.dtype = dtype
        self.sample_std = sample_std
        self._noise: Tensor | None = None

    def randomize(self, img: Tensor) -> None:
        """Draw the per-sample coins and standard deviations, and the noise field on ``img.device``."""
        selected = self.draw_selected(img.shape[0])
        std = self.R.uniform(0, self.std, img.shape[0]) if self.sample_std else np.full(img.shape[0], self.std)
        self._noise = None
        if not selected.any():
            return
        dtype = output_dtype(self.dtype, img)
        scale = torch.as_tensor(std * selected, dtype=dtype, device=img.device)
        offset = torch.as_tensor(self.mean * selected, dtype=dtype, device=img.device)
        noise = torch.randn(img.shape, generator=device_generator(self.R, img.device), device=img.device, dtype=dtype)
        view = (-1,) + (1,) * (img.ndim - 1)
        self._noise = noise * scale.view(view) + offset.view(view)

    def apply(self, img: Tensor) -> Tensor:
        """Add the drawn noise to ``img`` (same shape as the batch it was drawn for)."""
        out = img.to(output_dtype(self.dtype, img))
        if self._noise is None:
            return out
        if self._noise.shape != img.shape:
            raise ValueError(f"noise was drawn for shape {tuple(self._noise.shape)}, got {tuple(img.shape)}")
        return out + self._noise


class BatchedRandGaussianNoised(BatchedRandDict):
    """Dictionary version of :class:`BatchedRandGaussianNoise`: keys of a sample share its coin and noise.

    Unlike the original (one coin for the whole batch), every sample has its own coin.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: Any = np.float32,
        allow_missing_keys: bool = False,
        sample_std: bool = True,
    ) -> None:
        super().__init__(keys, BatchedRandGaussianNoise(prob, mean, std, dtype, sample_std), allow_missing_keys)
