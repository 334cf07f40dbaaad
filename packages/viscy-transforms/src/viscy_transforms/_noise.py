"""MONAI's Gaussian-noise transforms with the noise drawn by torch on the data's device (one draw per call)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import RandGaussianNoise, RandGaussianNoised
from torch import Tensor

from viscy_transforms._base import device_generator, output_dtype, seed_from_global_rng

__all__ = ["RandGaussianNoiseTensor", "RandGaussianNoiseTensord"]


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
        dtype = output_dtype(self.dtype, img)
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
