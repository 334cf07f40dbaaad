"""Gaussian noise generated with torch on the data's device (per call, or per sample for batches)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import RandGaussianNoise, RandGaussianNoised
from monai.utils import get_equivalent_dtype
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, device_generator, seed_from_global_rng

__all__ = [
    "BatchedRandGaussianNoise",
    "BatchedRandGaussianNoised",
    "RandGaussianNoiseTensor",
    "RandGaussianNoiseTensord",
]


def _torch_dtype(dtype: Any, img: Tensor) -> torch.dtype:
    if dtype is None:
        return img.dtype if img.is_floating_point() else torch.float32
    return get_equivalent_dtype(dtype, torch.Tensor)


class RandGaussianNoiseTensor(RandGaussianNoise):
    """MONAI ``RandGaussianNoise`` whose noise is drawn with torch directly on the input's device.

    One coin and one noise draw per call (per-sample semantics, any input shape).

    Parameters
    ----------
    prob : float
        Probability of adding noise.
    mean : float
        Mean of the noise.
    std : float
        Standard deviation of the noise (upper bound of ``U(0, std)`` if ``sample_std``).
    dtype : DTypeLike
        Output data type.
    sample_std : bool
        Draw the standard deviation from ``U(0, std)`` on every call.
    """

    def __init__(
        self,
        prob: float = 0.1,
        mean: float = 0.0,
        std: float = 0.1,
        dtype: Any = np.float32,
        sample_std: bool = True,
    ) -> None:
        super().__init__(prob=prob, mean=mean, std=std, dtype=dtype, sample_std=sample_std)
        seed_from_global_rng(self)

    def randomize(self, img: Tensor, mean: float | None = None) -> None:  # type: ignore[override]
        """Draw the coin, the standard deviation and the noise tensor (on ``img.device``)."""
        super(RandGaussianNoise, self).randomize(None)
        if not self._do_transform:
            return
        img = torch.as_tensor(img)
        std = self.R.uniform(0, self.std) if self.sample_std else self.std
        generator = device_generator(self.R, img.device)
        dtype = _torch_dtype(self.dtype, img)
        noise = torch.randn(img.shape, generator=generator, device=img.device, dtype=dtype)
        self.noise = noise * std + (self.mean if mean is None else mean)


class RandGaussianNoiseTensord(RandGaussianNoised):
    """Dictionary version of :class:`RandGaussianNoiseTensor`: one coin per call, the same noise for all keys.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of the tensors to noise (all of the same shape).
    prob, mean, std, dtype, sample_std
        See :class:`RandGaussianNoiseTensor`.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
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
        super().__init__(keys, prob, mean, std, dtype, allow_missing_keys, sample_std)
        self.rand_gaussian_noise = RandGaussianNoiseTensor(1.0, mean, std, dtype, sample_std)
        seed_from_global_rng(self)


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
        dtype = _torch_dtype(self.dtype, img)
        scale = torch.as_tensor(std * selected, dtype=dtype, device=img.device)
        offset = torch.as_tensor(self.mean * selected, dtype=dtype, device=img.device)
        noise = torch.randn(img.shape, generator=device_generator(self.R, img.device), device=img.device, dtype=dtype)
        view = (-1,) + (1,) * (img.ndim - 1)
        self._noise = noise * scale.view(view) + offset.view(view)

    def apply(self, img: Tensor) -> Tensor:
        """Add the drawn noise to ``img`` (same shape as the batch it was drawn for)."""
        out = img.to(_torch_dtype(self.dtype, img))
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
