"""Random Gaussian smoothing of batched ``(B, C, [Z,] Y, X)`` tensors with per-sample sigmas."""

from collections.abc import Sequence

import numpy as np
import torch
from kornia.filters import filter2d, filter3d
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform, as_pair

__all__ = [
    "BatchedRandGaussianSmooth",
    "BatchedRandGaussianSmoothd",
    "filter3d_separable",
    "filter_separable",
    "gaussian_kernels",
]


def gaussian_kernels(sigma: Tensor, truncated: float = 4.0) -> Tensor:
    """Per-sample 1-D "erf" Gaussian kernels as MONAI's ``gaussian_1d`` (unnormalised), shape ``(B, k)``.

    Sample ``i`` has tail ``int(max(sigma_i * truncated, 0.5) + 0.5)``; all kernels share the largest size and
    are zero beyond their own tail. ``sigma = 0`` gives the identity kernel.
    """
    tails = (torch.clamp(sigma * truncated, min=0.5) + 0.5).floor()
    max_tail = int(tails.max().item()) if len(sigma) else 0
    x = torch.arange(-max_tail, max_tail + 1, dtype=sigma.dtype, device=sigma.device)
    t = 0.70710678 / sigma.abs()[:, None]
    kernels = 0.5 * (torch.erf(t * (x + 0.5)) - torch.erf(t * (x - 0.5)))
    return kernels.clamp(min=0) * (x.abs() <= tails[:, None])


def filter_separable(input: Tensor, kernels: Sequence[Tensor | None], border_type: str = "constant") -> Tensor:
    """Convolve ``input`` ``(B, C, *spatial)`` (2-D or 3-D) with per-sample 1-D kernels ``(B, k)``, one per axis.

    ``kernels`` holds one entry per spatial axis in array order; ``None`` skips that axis. ``border_type`` is
    kornia's (``"constant"`` pads with zeros, like MONAI). With zero padding, taps farther than ``n - 1`` from the
    centre of an axis of size ``n`` only ever meet padding, so they are dropped (exact; e.g. a size-1 axis becomes
    a per-sample multiplication).
    """
    n_spatial = input.ndim - 2
    if len(kernels) != n_spatial or n_spatial not in (2, 3):
        raise ValueError(
            f"expected one kernel per spatial axis of a 2-D or 3-D batch, got {len(kernels)} for {tuple(input.shape)}"
        )
    filter_nd = filter3d if n_spatial == 3 else filter2d
    out = input
    for axis, kernel in enumerate(kernels):
        if kernel is None:
            continue
        size = input.shape[axis + 2]
        tail = kernel.shape[1] // 2
        if border_type == "constant" and tail > size - 1:
            kernel = kernel[:, tail - (size - 1) : tail + size]
        if kernel.shape[1] == 1:
            out = out * kernel.view(-1, *(1,) * (input.ndim - 1))
        else:
            view = [1] * n_spatial
            view[axis] = -1
            out = filter_nd(out, kernel.reshape(len(kernel), *view), border_type=border_type)
    return out


def filter3d_separable(
    input: Tensor,
    kernel_z: Tensor | None,
    kernel_y: Tensor | None,
    kernel_x: Tensor | None,
    border_type: str = "constant",
) -> Tensor:
    """Convolve ``input`` ``(B, C, D, H, W)`` with per-sample 1-D kernels ``(B, k)`` along D, H and W.

    A ``None`` kernel skips that axis; see :func:`filter_separable`.
    """
    return filter_separable(input, (kernel_z, kernel_y, kernel_x), border_type)


class BatchedRandGaussianSmooth(BatchedRandomTransform):
    """Smooth each sample with its own random Gaussian sigmas (independent coin per sample).

    ``sigma_x`` applies to the last axis (X/W), ``sigma_y`` to Y/H and ``sigma_z`` to Z/D. (MONAI's
    ``RandGaussianSmoothd``, and this package's wrapper of it, map ``sigma_x`` to the *first* spatial axis.)
    On a 2-D batch ``(B, C, Y, X)`` only ``sigma_y`` and ``sigma_x`` act; ``sigma_z`` is still drawn (so a seed
    gives the same Y/X sigmas in 2-D and 3-D) but has no axis to smooth and is ignored.

    Parameters
    ----------
    sigma_x, sigma_y, sigma_z : tuple[float, float] | float
        Ranges ``(min, max)`` of the per-sample sigmas in voxels (a number is a fixed sigma); ``sigma_z`` is
        ignored on 2-D batches.
    truncated : float
        Kernel tail length in sigmas.
    prob : float
        Probability that a sample is smoothed.
    border_type : str
        Padding of kornia's ``filter3d``: ``"constant"`` (zeros), ``"reflect"``, ``"replicate"``, ``"circular"``.
    """

    channel_independent = True

    def __init__(
        self,
        sigma_x: tuple[float, float] | float = (1.0, 3.0),
        sigma_y: tuple[float, float] | float = (1.0, 3.0),
        sigma_z: tuple[float, float] | float = (1.0, 3.0),
        truncated: float = 4.0,
        prob: float = 0.5,
        border_type: str = "constant",
    ) -> None:
        super().__init__(prob)
        # stored in array order (Z, Y, X)
        self.sigma_ranges = [
            as_pair(s, name) for s, name in ((sigma_z, "sigma_z"), (sigma_y, "sigma_y"), (sigma_x, "sigma_x"))
        ]
        if any(low < 0 for low, _ in self.sigma_ranges):
            raise ValueError(f"sigmas must be non-negative, got {self.sigma_ranges}")
        self.truncated = truncated
        self.border_type = border_type
        self._sigmas: np.ndarray | None = None

    def randomize(self, img: Tensor) -> None:
        """Draw the coin and sigmas of each sample, ``(B, 3)`` (Z, Y, X) or ``(B, 2)`` (Y, X) for 2-D batches.

        Unselected samples get sigma 0.
        """
        selected = self.draw_selected(img.shape[0])
        sigmas = np.stack([self.R.uniform(low, high, img.shape[0]) for low, high in self.sigma_ranges], axis=1)
        self._sigmas = (sigmas * selected[:, None])[:, 3 - (img.ndim - 2) :]

    def apply(self, img: Tensor) -> Tensor:
        """Smooth ``img`` with the drawn sigmas."""
        if self._sigmas.shape[1] != img.ndim - 2:
            raise ValueError(f"sigmas were drawn for {self._sigmas.shape[1]} spatial dims, got {tuple(img.shape)}")
        if not self._sigmas.any():
            return img
        dtype = img.dtype if img.is_floating_point() else torch.float32
        sigmas = torch.as_tensor(self._sigmas, dtype=dtype, device=img.device)
        kernels = [
            gaussian_kernels(sigmas[:, axis], self.truncated) if self._sigmas[:, axis].any() else None
            for axis in range(sigmas.shape[1])
        ]
        return filter_separable(img.to(dtype), kernels, border_type=self.border_type)


class BatchedRandGaussianSmoothd(BatchedRandDict):
    """Dictionary version of :class:`BatchedRandGaussianSmooth`; all keys of a sample share its sigmas."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        sigma_x: tuple[float, float] | float = (1.0, 3.0),
        sigma_y: tuple[float, float] | float = (1.0, 3.0),
        sigma_z: tuple[float, float] | float = (1.0, 3.0),
        truncated: float = 4.0,
        prob: float = 0.5,
        border_type: str = "constant",
        allow_missing_keys: bool = False,
    ) -> None:
        transform = BatchedRandGaussianSmooth(sigma_x, sigma_y, sigma_z, truncated, prob, border_type)
        super().__init__(keys, transform, allow_missing_keys)
