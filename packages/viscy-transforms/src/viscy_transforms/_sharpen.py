"""Random unsharp-style sharpening of batched tensors."""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, as_pair

__all__ = ["BatchedRandSharpend"]


def _sharpen_kernel(channels: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Depthwise 3x3x3 kernel: centre 7, the six face neighbours -1 (sums to 1), shape ``(C, 1, 3, 3, 3)``."""
    kernel = torch.zeros(3, 3, 3, dtype=dtype, device=device)
    kernel[1, 1, 1] = 7.0
    for axis in range(3):
        for side in (0, 2):
            index = [1, 1, 1]
            index[axis] = side
            kernel[tuple(index)] = -1.0
    return kernel.expand(channels, 1, 3, 3, 3)


class _BatchedRandSharpen(BatchedRandomTransform):
    """Blend each selected sample with its sharpened version: ``(1 - a) x + a sharpen(x)``."""

    channel_independent = True

    def __init__(self, alpha_range: tuple[float, float], prob: float) -> None:
        super().__init__(prob)
        self.alpha_range = as_pair(alpha_range, "alpha_range")
        self._alphas: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        selected = self.draw_selected(img.shape[0])
        self._alphas = self.R.uniform(*self.alpha_range, img.shape[0]) * selected

    def apply(self, img: Tensor) -> Tensor:
        if not self._alphas.any():
            return img
        x = img.to(img.dtype if img.is_floating_point() else torch.float32)
        kernel = _sharpen_kernel(x.shape[1], x.dtype, x.device)
        sharpened = F.conv3d(x, kernel, padding=1, groups=x.shape[1])
        alpha = torch.as_tensor(self._alphas, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
        return torch.lerp(x, sharpened, alpha)


class BatchedRandSharpend(BatchedRandDict):
    """Sharpen each selected sample with a random strength (shared by its keys); any number of channels.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, Z, Y, X)`` tensors.
    alpha_range : tuple[float, float]
        Range of the blending weight of the sharpened image.
    prob : float
        Probability that a sample is sharpened (independent per sample).
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        alpha_range: tuple[float, float] = (0.1, 0.5),
        prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, _BatchedRandSharpen(alpha_range, prob), allow_missing_keys)
