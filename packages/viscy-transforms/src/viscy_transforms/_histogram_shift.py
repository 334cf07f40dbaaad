"""Random additive intensity offsets of batched tensors."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, as_pair

__all__ = ["BatchedRandHistogramShiftd"]


class _BatchedRandIntensityShift(BatchedRandomTransform):
    """Add a per-sample offset ``U(shift_range)`` to each selected sample."""

    channel_independent = True

    def __init__(self, shift_range: tuple[float, float], prob: float) -> None:
        super().__init__(prob)
        self.shift_range = as_pair(shift_range, "shift_range")
        self._shifts: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        selected = self.draw_selected(img.shape[0])
        self._shifts = self.R.uniform(*self.shift_range, img.shape[0]) * selected

    def apply(self, img: Tensor) -> Tensor:
        x = img.to(img.dtype if img.is_floating_point() else torch.float32)
        shifts = torch.as_tensor(self._shifts, dtype=x.dtype, device=x.device)
        return x + shifts.view(-1, *(1,) * (x.ndim - 1))


class BatchedRandHistogramShiftd(BatchedRandDict):
    """Shift the intensity histogram of each selected sample by a random offset (shared by its keys).

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, [Z,] Y, X)`` tensors.
    shift_range : tuple[float, float]
        Range of the additive offset.
    prob : float
        Probability that a sample is shifted (independent per sample).
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        shift_range: tuple[float, float] = (-0.1, 0.1),
        prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, _BatchedRandIntensityShift(shift_range, prob), allow_missing_keys)
