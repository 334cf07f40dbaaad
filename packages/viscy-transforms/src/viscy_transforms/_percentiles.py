"""Per-sample percentile-based intensity rescaling of batched tensors."""

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import MapTransform, Transform, check_batched, present_batched_keys, torch_dtype

__all__ = ["BatchedScaleIntensityRangePercentiles", "BatchedScaleIntensityRangePercentilesd", "batched_quantile"]


def batched_quantile(values: Tensor, q: float) -> Tensor:
    """Quantile ``q`` in [0, 1] along the last dim with linear interpolation (as ``torch.quantile``).

    Uses ``kthvalue`` so that it has no size limit and no full sort.
    """
    n = values.shape[-1]
    position = q * (n - 1)
    low = int(np.floor(position))
    high = min(low + 1, n - 1)
    low_value = values.kthvalue(low + 1, dim=-1).values
    if high == low or position == low:
        return low_value
    high_value = values.kthvalue(high + 1, dim=-1).values
    return low_value + (position - low) * (high_value - low_value)


class BatchedScaleIntensityRangePercentiles(Transform):
    """Rescale each sample from its ``[lower, upper]`` percentiles to ``[b_min, b_max]``.

    Percentiles are computed per sample over ``(C, *spatial)`` (per sample and channel if ``channel_wise``),
    as MONAI's ``ScaleIntensityRangePercentiles`` would on each sample.

    Parameters
    ----------
    lower, upper : float
        Percentiles in [0, 100].
    b_min, b_max : float | None
        Target range (None skips the affine mapping, as in MONAI).
    clip : bool
        Clip the output to ``[b_min, b_max]``.
    relative : bool
        Map to ``b_min + (b_max - b_min) * [lower, upper] / 100`` instead.
    channel_wise : bool
        Compute percentiles per channel.
    dtype : DTypeLike
        Output data type (None keeps the input's floating dtype).
    """

    def __init__(
        self,
        lower: float,
        upper: float,
        b_min: float | None,
        b_max: float | None,
        clip: bool = False,
        relative: bool = False,
        channel_wise: bool = False,
        dtype: Any = np.float32,
    ) -> None:
        for name, value in (("lower", lower), ("upper", upper)):
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"{name} percentile must be in [0, 100], got {value}")
        if relative and (b_min is None or b_max is None):
            raise ValueError("relative=True needs both b_min and b_max")
        self.lower, self.upper = lower, upper
        self.b_min, self.b_max = b_min, b_max
        self.clip = clip
        self.relative = relative
        self.channel_wise = channel_wise
        self.dtype = dtype

    def _target_range(self) -> tuple[float | None, float | None]:
        if not self.relative:
            return self.b_min, self.b_max
        span = self.b_max - self.b_min
        return self.b_min + span * self.lower / 100.0, self.b_min + span * self.upper / 100.0

    def __call__(self, img: Tensor) -> Tensor:
        """Rescale ``img`` ``(B, C, *spatial)``."""
        img = check_batched("img", img)
        x = img.to(img.dtype if img.is_floating_point() else torch.float32)
        flat = x.flatten(2) if self.channel_wise else x.flatten(1)
        view = flat.shape[:-1] + (1,) * (x.ndim - flat.ndim + 1)
        a_min = batched_quantile(flat, self.lower / 100.0).view(view)
        a_max = batched_quantile(flat, self.upper / 100.0).view(view)
        b_min, b_max = self._target_range()
        degenerate = a_max == a_min
        if degenerate.any():
            warnings.warn("Divide by zero (a_min == a_max): those samples are only shifted", stacklevel=2)
        out = (x - a_min) / torch.where(degenerate, torch.ones_like(a_max), a_max - a_min)
        if b_min is not None and b_max is not None:
            out = out * (b_max - b_min) + b_min
        if self.clip:
            out = out.clamp(b_min, b_max)
        shifted = x - a_min + (0.0 if b_min is None else b_min)
        out = torch.where(degenerate, shifted, out)
        return out if self.dtype is None else out.to(torch_dtype(self.dtype))


class BatchedScaleIntensityRangePercentilesd(MapTransform):
    """Dictionary version of :class:`BatchedScaleIntensityRangePercentiles` (each key rescaled on its own)."""

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
        dtype: Any = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = BatchedScaleIntensityRangePercentiles(
            lower, upper, b_min, b_max, clip, relative, channel_wise, dtype
        )

    def __call__(self, data: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Rescale every present key."""
        d = dict(data)
        for key in present_batched_keys(self, d):
            d[key] = self.scaler(d[key])
        return d
