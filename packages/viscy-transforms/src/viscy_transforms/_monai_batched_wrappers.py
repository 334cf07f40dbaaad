"""MONAI dictionary transforms that also run on batched ``(B, C, Z, Y, X)`` tensors with per-sample draws.

On per-sample input (e.g. ``(C, Z, Y, X)``) each class behaves exactly as its MONAI parent. When every present
key holds a 5-D tensor, the call is dispatched to the batched implementation, which keeps MONAI's parameter
semantics (radians, scale factors ``1 + U(-s, s)``, ``sigma_x`` on the first spatial axis, ...) but draws the
random parameters independently for every sample, shares them between the keys of that sample (as MONAI
shares one draw between keys) and never leaves the tensor's device. A 4-D tensor is always treated as one
per-sample ``(C, Z, Y, X)`` volume.
"""

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import monai.transforms as mt
import numpy as np
import torch

from viscy_transforms._affine import MonaiBatchedRandAffined
from viscy_transforms._base import MapTransform, is_batched_input, seed_from_global_rng
from viscy_transforms._batched_noise import BatchedRandGaussianNoised
from viscy_transforms._gaussian_smooth import BatchedRandGaussianSmoothd
from viscy_transforms._intensity import BatchedRandAdjustContrastd, BatchedRandScaleIntensityd
from viscy_transforms._percentiles import BatchedScaleIntensityRangePercentilesd

__all__ = [
    "RandAdjustContrastd",
    "RandAffined",
    "RandGaussianNoised",
    "RandGaussianSmoothd",
    "RandScaleIntensityd",
    "ScaleIntensityRangePercentilesd",
]


class _BatchedDispatch:
    """Mixin: send 5-D batches to ``self.batched`` (which returns plain tensors), anything else to the MONAI parent."""

    batched: MapTransform

    def __call__(self, data: Mapping[Hashable, Any], *args: Any, **kwargs: Any) -> Any:
        if is_batched_input(self, data):
            return self.batched(data)
        return super().__call__(data, *args, **kwargs)


class _RandomBatchedDispatch(_BatchedDispatch):
    """Dispatch mixin for random transforms: ``set_random_state`` reseeds both implementations."""

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        if hasattr(self, "batched"):
            self.batched.set_random_state(seed, state)
        return self


class RandAffined(_RandomBatchedDispatch, mt.RandAffined):
    """MONAI ``RandAffined``; on batches, one affine per sample shared by all keys of that sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys to transform.
    prob : float
        Probability that a sample is transformed.
    rotate_range, shear_range, scale_range, translate_range
        MONAI ranges: radians, shear coefficients, scale offsets (factor ``1 + U(-s, s)``), voxels.
    spatial_size : Sequence[int] | int | None
        Output spatial size (None keeps the input size).
    mode : str
        ``"bilinear"`` or ``"nearest"`` (MONAI also takes spline orders on per-sample input).
    padding_mode : str
        ``"zeros"``, ``"border"`` or ``"reflection"``.
    cache_grid, device, lazy
        MONAI options of the per-sample path (the batched path stays on the data's device).
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        rotate_range: Sequence[tuple[float, float] | float] | float | None,
        shear_range: Sequence[tuple[float, float] | float] | float | None,
        scale_range: Sequence[tuple[float, float] | float] | float | None,
        translate_range: Sequence[tuple[float, float] | float] | float | None = None,
        spatial_size: Sequence[int] | int | None = None,
        mode: str = "bilinear",
        padding_mode: str = "reflection",
        cache_grid: bool = False,
        device: torch.device | None = None,
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        super().__init__(
            keys=keys,
            spatial_size=spatial_size,
            prob=prob,
            rotate_range=rotate_range,
            shear_range=shear_range,
            translate_range=translate_range,
            scale_range=scale_range,
            mode=mode,
            padding_mode=padding_mode,
            cache_grid=cache_grid,
            device=device,
            allow_missing_keys=allow_missing_keys,
            lazy=lazy,
        )
        self.batched = MonaiBatchedRandAffined(
            keys,
            prob,
            rotate_range,
            shear_range,
            translate_range,
            scale_range,
            spatial_size,
            mode,
            padding_mode,
            allow_missing_keys,
        )
        seed_from_global_rng(self)


class RandAdjustContrastd(_RandomBatchedDispatch, mt.RandAdjustContrastd):
    """MONAI ``RandAdjustContrastd``; on batches, one coin and gamma per sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys to transform.
    prob : float
        Probability that a sample is transformed.
    gamma : tuple[float, float] | float
        Range of gamma, or a number ``g > 0.5`` for ``(0.5, g)``.
    invert_image, retain_stats : bool
        See ``monai.transforms.AdjustContrast``.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        gamma: tuple[float, float] | float,
        invert_image: bool = False,
        retain_stats: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        gamma = tuple(gamma) if isinstance(gamma, Sequence) else gamma
        super().__init__(keys, prob, gamma, invert_image, retain_stats, allow_missing_keys)
        # MONAI's own (low, high) reading of gamma (it sorts a pair), so that both paths accept the same values
        gamma = self.adjuster.gamma
        self.batched = BatchedRandAdjustContrastd(keys, gamma, prob, invert_image, retain_stats, allow_missing_keys)
        seed_from_global_rng(self)


class RandScaleIntensityd(_RandomBatchedDispatch, mt.RandScaleIntensityd):
    """MONAI ``RandScaleIntensityd`` (``x * (1 + f)``); on batches, one coin and factor per sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys to transform.
    factors : tuple[float, float] | float
        ``f ~ U(-factors, factors)`` for a number, ``U(min, max)`` for a pair.
    prob : float
        Probability that a sample is scaled.
    channel_wise : bool
        One factor per channel.
    dtype : DTypeLike
        Output dtype of the per-sample path (the batched path keeps the input's floating dtype).
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        factors: tuple[float, float] | float,
        prob: float,
        channel_wise: bool = False,
        dtype: Any = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, factors, prob, channel_wise, dtype, allow_missing_keys)
        self.batched = BatchedRandScaleIntensityd(keys, factors, prob, channel_wise, allow_missing_keys)
        seed_from_global_rng(self)


class RandGaussianNoised(_RandomBatchedDispatch, mt.RandGaussianNoised):
    """MONAI ``RandGaussianNoised``; on batches, one coin, standard deviation and noise field per sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys to transform (all keys of a sample receive the same noise).
    prob : float
        Probability that a sample is noised.
    mean, std : float
        Noise mean and standard deviation (``U(0, std)`` if ``sample_std``).
    dtype : DTypeLike
        Output data type.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    sample_std : bool
        Draw the standard deviation from ``U(0, std)``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        mean: float,
        std: float,
        dtype: Any = np.float32,
        allow_missing_keys: bool = False,
        sample_std: bool = True,
    ) -> None:
        super().__init__(keys, prob, mean, std, dtype, allow_missing_keys, sample_std)
        self.batched = BatchedRandGaussianNoised(keys, prob, mean, std, dtype, allow_missing_keys, sample_std)
        seed_from_global_rng(self)


class RandGaussianSmoothd(_RandomBatchedDispatch, mt.RandGaussianSmoothd):
    """MONAI ``RandGaussianSmoothd``; on batches, one coin and sigma triple per sample.

    As in MONAI, ``sigma_x`` smooths the first spatial axis (Z of ``(B, C, Z, Y, X)``), ``sigma_y`` the second
    and ``sigma_z`` the third, with zero padding.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys to transform (keys of a sample share its sigmas).
    prob : float
        Probability that a sample is smoothed.
    sigma_x, sigma_y, sigma_z : tuple[float, float]
        Sigma ranges of the first, second and third spatial axes.
    approx : str
        Discrete Gaussian kernel; the batched path supports ``"erf"``.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        sigma_x: tuple[float, float],
        sigma_y: tuple[float, float],
        sigma_z: tuple[float, float],
        approx: str = "erf",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, sigma_x, sigma_y, sigma_z, approx, prob, allow_missing_keys)
        self.approx = approx
        # the batched transform names sigmas by (X=last, Y, Z=first) axis: MONAI's sigma_x is its sigma_z
        self.batched = BatchedRandGaussianSmoothd(
            keys, sigma_x=sigma_z, sigma_y=sigma_y, sigma_z=sigma_x, prob=prob, allow_missing_keys=allow_missing_keys
        )
        seed_from_global_rng(self)

    def __call__(self, data: Mapping[Hashable, Any], *args: Any, **kwargs: Any) -> Any:
        """Smooth per-sample input with MONAI, batched input with per-sample sigmas."""
        if self.approx != "erf" and is_batched_input(self, data):
            raise ValueError(f"RandGaussianSmoothd on batched input supports approx='erf', got {self.approx!r}")
        return super().__call__(data, *args, **kwargs)


class ScaleIntensityRangePercentilesd(_BatchedDispatch, mt.ScaleIntensityRangePercentilesd):
    """MONAI ``ScaleIntensityRangePercentilesd``; on batches, percentiles are computed per sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys to rescale.
    lower, upper : float
        Percentiles in [0, 100] mapped to ``b_min`` and ``b_max``.
    b_min, b_max : float | None
        Target range.
    clip : bool
        Clip the output to ``[b_min, b_max]``.
    relative : bool
        Map to ``b_min + (b_max - b_min) * [lower, upper] / 100`` instead.
    channel_wise : bool
        Percentiles per channel.
    dtype : DTypeLike | None
        Output data type (None keeps the input's).
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        lower: float,
        upper: float,
        b_min: float | None,
        b_max: float | None,
        clip: bool = False,
        relative: bool = False,
        channel_wise: bool = False,
        dtype: Any = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, lower, upper, b_min, b_max, clip, relative, channel_wise, dtype, allow_missing_keys)
        self.batched = BatchedScaleIntensityRangePercentilesd(
            keys, lower, upper, b_min, b_max, clip, relative, channel_wise, dtype, allow_missing_keys
        )
