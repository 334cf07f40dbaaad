"""Random affine transforms of batched ``(B, C, Z, Y, X)`` tensors with per-sample parameters."""

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable
from monai.utils import fall_back_tuple
from torch import Tensor

from viscy_transforms._affine_grid import affine_matrices, draw_range_params, warp_affine
from viscy_transforms._base import draw_coins, present_batched_keys, seed_from_global_rng

__all__ = ["BatchedRandAffined", "MonaiBatchedRandAffined"]


class _BatchedRandAffineBase(MapTransform, Randomizable):
    """Per-sample coin and affine parameters; one affine per sample shared by all keys of a call."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        spatial_size: Sequence[int] | int | None,
        mode: str,
        padding_mode: str,
        allow_missing_keys: bool,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.prob = prob
        self.spatial_size = spatial_size
        self.mode = mode
        self.padding_mode = padding_mode
        seed_from_global_rng(self)

    def draw_params(self, batch_size: int, spatial_shape: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Return ``(rotate (B,3), shear (B,6), translate (B,3), scale (B,3))`` for MONAI's matrix convention."""
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Warp every present key of the batch with the same per-sample affine."""
        d = dict(data)
        keys = present_batched_keys(self, d)
        if not keys:
            return d
        first = d[keys[0]]
        batch_size, spatial_shape = first.shape[0], tuple(first.shape[2:])
        selected = draw_coins(self.R, self.prob, batch_size)
        params = self.draw_params(batch_size, spatial_shape)
        dtype = first.dtype if first.is_floating_point() else torch.float32
        matrices = affine_matrices(*(torch.as_tensor(p, dtype=dtype, device=first.device) for p in params))
        if len({(tuple(d[key].shape[2:]), d[key].dtype) for key in keys}) == 1:
            # one resampling pass for all keys: the sampling grid is shared across channels
            channels = [d[key].shape[1] for key in keys]
            warped = self._warp(torch.cat([d[key] for key in keys], dim=1), matrices, selected)
            d.update(zip(keys, warped.split(channels, dim=1)))
        else:
            for key in keys:
                d[key] = self._warp(d[key], matrices, selected)
        return d

    def _warp(self, img: Tensor, matrices: Tensor, selected: np.ndarray) -> Tensor:
        out_size = tuple(fall_back_tuple(self.spatial_size, img.shape[2:])) if self.spatial_size else img.shape[2:]
        if tuple(out_size) != tuple(img.shape[2:]):
            identity = torch.eye(4, dtype=matrices.dtype, device=matrices.device)
            keep = torch.as_tensor(selected, device=matrices.device)[:, None, None]
            return warp_affine(img, torch.where(keep, matrices, identity), out_size, self.mode, self.padding_mode)
        out = img.to(img.dtype if img.is_floating_point() else torch.float32, copy=True)
        if selected.any():
            index = torch.as_tensor(np.flatnonzero(selected), device=img.device)
            out[index] = warp_affine(out[index], matrices[index], None, self.mode, self.padding_mode)
        return out


class BatchedRandAffined(_BatchedRandAffineBase):
    """Random 3-D affine (rotation, shear, translation, zoom) drawn independently for every sample.

    All keys of one call share the same per-sample transform (e.g. source and target stay aligned).
    Parameters follow the original kornia-based semantics, in MONAI's ``(Z, Y, X)`` axis order.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, Z, Y, X)`` tensors.
    prob : float
        Probability that a sample is transformed.
    rotate_range : Sequence | float | None
        Rotation ranges in radians (MONAI convention: entry 0 turns the (Y, X) plane); a number ``v`` means
        ``U(-v, v)``, a pair ``(min, max)``.
    shear_range : Sequence | float | None
        Up to 6 shear angles in radians (coefficient ``tan(angle)``), MONAI's elementary-shear order.
    translate_range : Sequence | float | None
        Maximal shift per axis as a fraction of the image size.
    scale_range : Sequence | None
        Magnification factors: ``(min, max)`` for isotropic zoom or three ``(min, max)`` pairs for (Z, Y, X).
    mode : str
        ``"bilinear"`` or ``"nearest"``.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float = 0.1,
        rotate_range: Sequence[float | Sequence[float]] | float | None = None,
        shear_range: Sequence[float | Sequence[float]] | float | None = None,
        translate_range: Sequence[float | Sequence[float]] | float | None = None,
        scale_range: Sequence[float | Sequence[float]] | None = None,
        mode: str = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, None, mode, "zeros", allow_missing_keys)
        self.rotate_range = rotate_range
        self.shear_range = shear_range
        self.translate_range = translate_range
        self.scale_range = self._check_scale_range(scale_range)

    @staticmethod
    def _check_scale_range(scale_range: Sequence | None) -> np.ndarray | None:
        if scale_range is None:
            return None
        ranges = np.asarray(scale_range, dtype=float)
        if ranges.shape not in ((2,), (3, 2)) or (ranges <= 0).any():
            raise ValueError(f"scale_range must be a positive (min, max) pair or 3 such pairs, got {scale_range!r}")
        return ranges

    def draw_params(self, batch_size: int, spatial_shape: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Draw per-sample parameters; magnification ``m`` maps to the output-to-input scale ``1 / m``."""
        rotate = draw_range_params(self.R, batch_size, self.rotate_range, 3)
        shear = np.tan(draw_range_params(self.R, batch_size, self.shear_range, 6))
        # content moves by +t voxels: the output-to-input matrix translates by -t
        translate = -draw_range_params(self.R, batch_size, self.translate_range, 3) * np.asarray(spatial_shape)
        if self.scale_range is None:
            magnification = np.ones((batch_size, 3))
        elif self.scale_range.shape == (2,):
            magnification = np.repeat(self.R.uniform(*self.scale_range, size=(batch_size, 1)), 3, axis=1)
        else:
            magnification = self.R.uniform(self.scale_range[:, 0], self.scale_range[:, 1], size=(batch_size, 3))
        return rotate, shear, translate, 1.0 / magnification


class MonaiBatchedRandAffined(_BatchedRandAffineBase):
    """Batched counterpart of ``monai.transforms.RandAffined``: same parameter semantics, per-sample draws.

    Rotations in radians, shear coefficients, translations in voxels and scale factors ``1 + U(-s, s)``
    exactly as MONAI (a number expands to one entry, i.e. the first spatial axis). Used by
    :class:`viscy_transforms.RandAffined` on batched input.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        prob: float,
        rotate_range: Sequence | float | None,
        shear_range: Sequence | float | None,
        translate_range: Sequence | float | None,
        scale_range: Sequence | float | None,
        spatial_size: Sequence[int] | int | None,
        mode: str,
        padding_mode: str,
        allow_missing_keys: bool,
    ) -> None:
        super().__init__(keys, prob, spatial_size, mode, padding_mode, allow_missing_keys)
        self.rotate_range = rotate_range
        self.shear_range = shear_range
        self.translate_range = translate_range
        self.scale_range = scale_range

    def draw_params(self, batch_size: int, spatial_shape: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Draw per-sample parameters from MONAI ranges."""
        return (
            draw_range_params(self.R, batch_size, self.rotate_range, 3),
            draw_range_params(self.R, batch_size, self.shear_range, 6),
            draw_range_params(self.R, batch_size, self.translate_range, 3),
            draw_range_params(self.R, batch_size, self.scale_range, 3, offset=1.0),
        )
