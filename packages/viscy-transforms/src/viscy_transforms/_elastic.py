"""Random elastic deformation of batched 2-D or 3-D tensors with per-sample fields."""

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._affine_grid import centered_grid, resample_at
from viscy_transforms._base import (
    MapTransform,
    Randomizable,
    as_pair,
    device_generator,
    draw_coins,
    fall_back_size,
    present_batched_keys,
    seed_from_global_rng,
)
from viscy_transforms._gaussian_smooth import filter_separable, gaussian_kernels

__all__ = ["BatchedRand3DElasticd"]


class BatchedRand3DElasticd(MapTransform, Randomizable):
    """Elastic deformation with an independent coin, smoothness and magnitude per sample.

    As MONAI's ``Rand3DElasticd``: a displacement field of ``U(-1, 1)`` noise is smoothed with a Gaussian of
    sigma ``U(sigma_range)`` voxels and multiplied by ``U(magnitude_range)`` voxels; the output samples the
    input at the displaced centred grid. All keys of a sample share the same field. Despite the name, 2-D
    batches ``(B, C, Y, X)`` are deformed the same way with a 2-component (Y, X) field.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, [Z,] Y, X)`` tensors.
    sigma_range : tuple[float, float]
        Range of the smoothing sigma (voxels).
    magnitude_range : tuple[float, float]
        Range of the displacement magnitude (voxels).
    spatial_size : Sequence[int] | int | None
        Output spatial size (centred on the input); None or non-positive entries keep the input size.
    prob : float
        Probability that a sample is deformed.
    mode : str
        ``"bilinear"`` or ``"nearest"``.
    padding_mode : str
        ``"zeros"``, ``"border"`` or ``"reflection"``.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        sigma_range: tuple[float, float],
        magnitude_range: tuple[float, float],
        spatial_size: Sequence[int] | int | None = None,
        prob: float = 0.1,
        mode: str = "bilinear",
        padding_mode: str = "reflection",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.sigma_range = as_pair(sigma_range, "sigma_range")
        self.magnitude_range = as_pair(magnitude_range, "magnitude_range")
        self.spatial_size = spatial_size
        self.prob = prob
        self.mode = mode
        self.padding_mode = padding_mode
        seed_from_global_rng(self)

    def _displaced_grid(self, batch_size: int, in_size: Sequence[int], like: Tensor) -> tuple[Tensor, np.ndarray]:
        out_size = fall_back_size(self.spatial_size, in_size) if self.spatial_size else tuple(in_size)
        dtype = like.dtype if like.is_floating_point() else torch.float32
        selected = draw_coins(self.R, self.prob, batch_size)
        sigma = self.R.uniform(*self.sigma_range, batch_size)
        magnitude = self.R.uniform(*self.magnitude_range, batch_size) * selected
        n_spatial = len(out_size)
        grid = centered_grid(out_size, dtype, like.device).expand(batch_size, *(-1,) * (n_spatial + 1))
        if not selected.any():
            return grid, selected
        generator = device_generator(self.R, like.device)
        shape = (batch_size, n_spatial, *out_size)
        noise = torch.rand(shape, generator=generator, dtype=dtype, device=like.device) * 2 - 1
        kernel = gaussian_kernels(torch.as_tensor(sigma, dtype=dtype, device=like.device))
        field = filter_separable(noise, [kernel] * n_spatial, border_type="constant")
        scale = torch.as_tensor(magnitude, dtype=dtype, device=like.device).view(-1, *(1,) * (n_spatial + 1))
        return grid + field * scale, selected

    def __call__(self, data: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Deform every present key with the same per-sample field."""
        d = dict(data)
        keys = present_batched_keys(self, d)
        if not keys:
            return d
        first = d[keys[0]]
        coords, selected = self._displaced_grid(first.shape[0], first.shape[2:], first)
        for key in keys:
            img = d[key].to(coords.dtype)
            if coords.shape[2:] == img.shape[2:] and not selected.all():
                out = img.clone()
                index = torch.as_tensor(np.flatnonzero(selected), device=img.device)
                if len(index):
                    out[index] = resample_at(img[index], coords[index], self.mode, self.padding_mode)
                d[key] = out
            else:
                d[key] = resample_at(img, coords, self.mode, self.padding_mode)
        return d
