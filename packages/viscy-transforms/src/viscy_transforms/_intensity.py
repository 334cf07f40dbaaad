"""Per-sample random contrast (gamma) and intensity scaling of batched tensors."""

from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, as_pair

__all__ = [
    "BatchedRandAdjustContrast",
    "BatchedRandAdjustContrastd",
    "BatchedRandScaleIntensity",
    "BatchedRandScaleIntensityd",
]

_CONTRAST_EPS = 1e-7
_STD_EPS = 1e-8


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _gamma_range(gamma: Sequence[float] | float) -> tuple[float, float]:
    """MONAI's gamma semantics: a number ``g`` means ``U(0.5, g)`` (so ``g > 0.5``), a pair ``U(low, high)``.

    The pair must hold two positive numbers with ``low <= high`` (a list or a tuple, e.g. from YAML).
    """
    if _is_number(gamma):
        if not gamma > 0.5:
            raise ValueError(f"gamma as a number must be > 0.5 (gamma is drawn from (0.5, gamma)), got {gamma!r}")
        return 0.5, float(gamma)
    if not isinstance(gamma, Sequence) or len(gamma) != 2 or not all(_is_number(g) for g in gamma):
        raise ValueError(f"gamma must be a number > 0.5 or a (low, high) pair of numbers, got {gamma!r}")
    low, high = float(gamma[0]), float(gamma[1])
    if not 0 < low <= high:
        raise ValueError(f"gamma range must be two increasing positive numbers (0 < low <= high), got {gamma!r}")
    return low, high


class BatchedRandAdjustContrast(BatchedRandomTransform):
    """Gamma contrast with an independent coin and gamma per sample (MONAI ``AdjustContrast`` per sample).

    Each selected sample is min-max normalised over all its voxels, raised to ``gamma`` and rescaled.
    Works on 2-D ``(B, C, Y, X)`` and 3-D ``(B, C, Z, Y, X)`` batches.

    Parameters
    ----------
    gamma : tuple[float, float] | float
        Range ``(low, high)`` of gamma with ``0 < low <= high``, or a number ``g > 0.5`` for ``(0.5, g)``
        (MONAI's ``RandAdjustContrast``); anything else raises ``ValueError``.
    prob : float
        Probability that a sample is transformed.
    invert_image : bool
        Negate the sample before and after the adjustment.
    retain_stats : bool
        Restore the sample's original mean and standard deviation afterwards.
    """

    def __init__(
        self,
        gamma: tuple[float, float] | float = (0.5, 4.5),
        prob: float = 0.1,
        invert_image: bool = False,
        retain_stats: bool = False,
    ) -> None:
        super().__init__(prob)
        self.gamma = _gamma_range(gamma)
        self.invert_image = invert_image
        self.retain_stats = retain_stats
        self._selected: np.ndarray | None = None
        self._gamma: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        """Draw each sample's coin and gamma."""
        self._selected = self.draw_selected(img.shape[0])
        self._gamma = self.R.uniform(*self.gamma, img.shape[0])

    def apply(self, img: Tensor) -> Tensor:
        """Adjust the contrast of the selected samples."""
        if not self._selected.any():
            return img
        x = img.to(img.dtype if img.is_floating_point() else torch.float32)
        dims = tuple(range(1, x.ndim))
        view = (-1,) + (1,) * (x.ndim - 1)
        sign = -1.0 if self.invert_image else 1.0
        x = sign * x
        low = x.amin(dim=dims, keepdim=True)
        span = x.amax(dim=dims, keepdim=True) - low
        gamma = torch.as_tensor(self._gamma, dtype=x.dtype, device=x.device).view(view)
        out = ((x - low) / (span + _CONTRAST_EPS)) ** gamma * span + low
        if self.retain_stats:
            out = (out - out.mean(dim=dims, keepdim=True)) / (out.std(dim=dims, keepdim=True) + _STD_EPS)
            out = out * x.std(dim=dims, keepdim=True) + x.mean(dim=dims, keepdim=True)
        selected = torch.as_tensor(self._selected, device=x.device).view(view)
        return torch.where(selected, sign * out, img.to(x.dtype))


class BatchedRandAdjustContrastd(BatchedRandDict):
    """Dictionary version of :class:`BatchedRandAdjustContrast`; keys of a sample share its coin and gamma."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        gamma: tuple[float, float] | float = (0.5, 4.5),
        prob: float = 0.1,
        invert_image: bool = False,
        retain_stats: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = BatchedRandAdjustContrast(gamma, prob, invert_image, retain_stats)
        super().__init__(keys, transform, allow_missing_keys)


class BatchedRandScaleIntensity(BatchedRandomTransform):
    """Multiply each selected sample by ``1 + f`` with its own random ``f`` (2-D or 3-D batches).

    Parameters
    ----------
    factors : tuple[float, float] | float
        ``f ~ U(-factors, factors)`` for a number, ``U(min, max)`` for a pair.
    prob : float
        Probability that a sample is scaled (unselected samples keep ``f = 0``).
    channel_wise : bool
        Draw one factor per (sample, channel) instead of per sample. ``__call__(img, randomize=False)``
        re-applies the factors of the last draw.
    """

    def __init__(
        self, factors: tuple[float, float] | float = 0.1, prob: float = 0.1, channel_wise: bool = False
    ) -> None:
        super().__init__(prob)
        self.factors = as_pair(factors, "factors", symmetric=True)
        self.channel_wise = channel_wise
        self._factors: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        """Draw each sample's coin and factor(s), shape ``(B, C)`` (or ``(B, 1)``)."""
        selected = self.draw_selected(img.shape[0])
        channels = img.shape[1] if self.channel_wise else 1
        self._factors = self.R.uniform(*self.factors, (img.shape[0], channels)) * selected[:, None]

    def apply(self, img: Tensor) -> Tensor:
        """Scale ``img`` by ``1 + f``."""
        if self.channel_wise and self._factors.shape[1] != img.shape[1]:
            raise ValueError(f"factors were drawn for {self._factors.shape[1]} channels, got {tuple(img.shape)}")
        x = img.to(img.dtype if img.is_floating_point() else torch.float32)
        factors = torch.as_tensor(self._factors, dtype=x.dtype, device=x.device)
        return x * (1.0 + factors.view(*factors.shape, *(1,) * (x.ndim - 2)))


class BatchedRandScaleIntensityd(BatchedRandDict):
    """Dictionary version of :class:`BatchedRandScaleIntensity`; keys of a sample share its factor(s)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        factors: tuple[float, float] | float = 0.1,
        prob: float = 0.1,
        channel_wise: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, BatchedRandScaleIntensity(factors, prob, channel_wise), allow_missing_keys)
