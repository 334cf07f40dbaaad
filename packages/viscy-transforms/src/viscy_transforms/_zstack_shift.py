"""Random integer shifts of batched stacks along Z."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform

__all__ = ["BatchedRandZStackShiftd"]


class _BatchedRandZStackShift(BatchedRandomTransform):
    """Shift each selected sample by an integer in ``[-max_shift, max_shift]`` slices; vacated slices = cval."""

    ndim = (5,)
    channel_independent = True

    def __init__(self, max_shift: int, prob: float, mode: str, cval: float) -> None:
        super().__init__(prob)
        if mode != "constant":
            raise ValueError(f"BatchedRandZStackShiftd only supports mode='constant', got {mode!r}")
        self.max_shift = max_shift
        self.cval = cval
        self._shifts: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        selected = self.draw_selected(img.shape[0])
        self._shifts = self.R.randint(-self.max_shift, self.max_shift + 1, img.shape[0]) * selected

    def apply(self, img: Tensor) -> Tensor:
        if not self._shifts.any():
            return img
        depth = img.shape[2]
        shifts = torch.as_tensor(self._shifts, device=img.device)
        source = torch.arange(depth, device=img.device)[None, :] - shifts[:, None]  # (B, Z): input slice per output
        valid = (source >= 0) & (source < depth)
        index = source.clamp(0, depth - 1).view(img.shape[0], 1, depth, 1, 1).expand_as(img)
        shifted = img.gather(2, index)
        return torch.where(valid.view(img.shape[0], 1, depth, 1, 1), shifted, torch.full_like(shifted, self.cval))


class BatchedRandZStackShiftd(BatchedRandDict):
    """Shift each selected sample along Z by a random number of slices (shared by its keys).

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, Z, Y, X)`` tensors (a 2-D ``(B, C, Y, X)`` batch has no Z axis to shift and
        raises ``ValueError``).
    max_shift : int
        Largest shift in slices (either direction).
    prob : float
        Probability that a sample is shifted (independent per sample).
    mode : str
        Filling of vacated slices; only ``"constant"``.
    cval : float
        Value of vacated slices.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        max_shift: int = 3,
        prob: float = 0.1,
        mode: str = "constant",
        cval: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, _BatchedRandZStackShift(max_shift, prob, mode, cval), allow_missing_keys)
