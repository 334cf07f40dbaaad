"""MONAI per-sample dictionary transforms re-declared with explicit signatures.

jsonargparse / LightningCLI read constructor signatures to parse YAML ``init_args``; MONAI's own signatures are
explicit, but these classes pin the argument names and defaults VisCy configs rely on.
"""

from collections.abc import Sequence
from typing import Any

import monai.transforms as mt
import numpy as np
import torch

__all__ = [
    "CenterSpatialCropd",
    "NormalizeIntensityd",
    "RandFlipd",
    "RandSpatialCropd",
    "RandWeightedCropd",
    "ToDeviced",
]


class CenterSpatialCropd(mt.CenterSpatialCropd):
    """MONAI ``CenterSpatialCropd``: center crop of per-sample ``(C, *spatial)`` tensors to ``roi_size``."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        roi_size: Sequence[int] | int,
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        super().__init__(keys=keys, roi_size=roi_size, allow_missing_keys=allow_missing_keys, lazy=lazy)


class NormalizeIntensityd(mt.NormalizeIntensityd):
    """MONAI ``NormalizeIntensityd``: z-score with the image's own statistics (or given ones)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        subtrahend: float | Sequence[float] | None = None,
        divisor: float | Sequence[float] | None = None,
        nonzero: bool = False,
        channel_wise: bool = False,
        dtype: Any = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys=keys,
            subtrahend=subtrahend,
            divisor=divisor,
            nonzero=nonzero,
            channel_wise=channel_wise,
            dtype=dtype,
            allow_missing_keys=allow_missing_keys,
        )


class RandFlipd(mt.RandFlipd):
    """MONAI ``RandFlipd``: flip per-sample tensors along ``spatial_axis`` with probability ``prob``."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        spatial_axis: Sequence[int] | int | None,
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        super().__init__(
            keys=keys, prob=prob, spatial_axis=spatial_axis, allow_missing_keys=allow_missing_keys, lazy=lazy
        )


class RandSpatialCropd(mt.RandSpatialCropd):
    """MONAI ``RandSpatialCropd``: random crop of per-sample tensors."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        roi_size: Sequence[int] | int,
        random_center: bool = True,
        max_roi_size: Sequence[int] | int | None = None,
        random_size: bool = False,
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        super().__init__(
            keys=keys,
            roi_size=roi_size,
            max_roi_size=max_roi_size,
            random_center=random_center,
            random_size=random_size,
            allow_missing_keys=allow_missing_keys,
            lazy=lazy,
        )


class RandWeightedCropd(mt.RandWeightedCropd):
    """MONAI ``RandWeightedCropd``: ``num_samples`` crops centred by sampling the weight map ``w_key``."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        w_key: str,
        spatial_size: Sequence[int] | int,
        num_samples: int = 1,
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        super().__init__(
            keys=keys,
            w_key=w_key,
            spatial_size=spatial_size,
            num_samples=num_samples,
            allow_missing_keys=allow_missing_keys,
            lazy=lazy,
        )


class ToDeviced(mt.ToDeviced):
    """MONAI ``ToDeviced``: move tensors to ``device``."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        device: torch.device | str,
        allow_missing_keys: bool = False,
        non_blocking: bool = False,
    ) -> None:
        super().__init__(keys=keys, device=device, allow_missing_keys=allow_missing_keys, non_blocking=non_blocking)
