"""Random unsharp-style sharpening of batched tensors."""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, as_pair

__all__ = ["BatchedRandSharpend"]


def _sharpen_kernel(channels: int, spatial_ndim: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Depthwise 3-wide kernel whose face neighbours are -1 and centre ``1 + 2 * spatial_ndim`` (sums to 1).

    3-D: centre 7 and six neighbours, shape ``(C, 1, 3, 3, 3)``; 2-D: centre 5 and four, ``(C, 1, 3, 3)``.
    """
    kernel = torch.zeros((3,) * spatial_ndim, dtype=dtype, device=device)
    centre = (1,) * spatial_ndim
    kernel[centre] = 1.0 + 2 * spatial_ndim
    for axis in range(spatial_ndim):
        for side in (0, 2):
            index = list(centre)
            index[axis] = side
            kernel[tuple(index)] = -1.0
    return kernel.expand(channels, 1, *kernel.shape)


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
        kernel = _sharpen_kernel(x.shape[1], x.ndim - 2, x.dtype, x.device)
        conv = F.conv3d if x.ndim == 5 else F.conv2d
        sharpened = conv(x, kernel, padding=1, groups=x.shape[1])
        alpha = torch.as_tensor(self._alphas, dtype=x.dtype, device=x.device).view(-1, *(1,) * (x.ndim - 1))
        return torch.lerp(x, sharpened, alpha)


class BatchedRandSharpend(BatchedRandDict):
    """Sharpen each selected sample with a random strength (shared by its keys); any number of channels.

    The kernel has ``-1`` on the face neighbours and ``1 + 2 * n`` in the centre for ``n`` spatial dims
    (3-D: 7 and six neighbours; 2-D ``(B, C, Y, X)``: 5 and four).

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, [Z,] Y, X)`` tensors.
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
