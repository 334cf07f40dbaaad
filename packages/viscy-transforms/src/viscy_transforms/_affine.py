"""Random affine transforms of batched ``(B, C, [Z,] Y, X)`` tensors with per-sample parameters."""

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._affine_grid import affine_matrices, draw_range_params, warp_affine
from viscy_transforms._base import (
    MapTransform,
    Randomizable,
    draw_coins,
    fall_back_size,
    present_batched_keys,
    seed_from_global_rng,
)

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
        """Return ``(rotate (B,3), shear (B,6), translate (B,3), scale (B,3))`` for MONAI's matrix convention.

        For a 2-D ``spatial_shape`` the widths are ``(1, 2, 2, 2)`` (see :func:`affine_matrices`).
        """
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Warp every present key of the batch with the same per-sample affine."""
        d = dict(data)
        keys = present_batched_keys(self, d)
        if not keys:
            return d
        ranks = {key: d[key].ndim for key in keys}
        if len(set(ranks.values())) > 1:
            raise ValueError(f"{type(self).__name__}: keys must be all 2-D or all 3-D batches, got ranks {ranks}")
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
            d.update(zip(keys, warped.split(channels, dim=1), strict=True))
        else:
            for key in keys:
                d[key] = self._warp(d[key], matrices, selected)
        return d

    def _warp(self, img: Tensor, matrices: Tensor, selected: np.ndarray) -> Tensor:
        out_size = fall_back_size(self.spatial_size, img.shape[2:]) if self.spatial_size else img.shape[2:]
        if tuple(out_size) != tuple(img.shape[2:]):
            identity = torch.eye(matrices.shape[-1], dtype=matrices.dtype, device=matrices.device)
            keep = torch.as_tensor(selected, device=matrices.device)[:, None, None]
            return warp_affine(img, torch.where(keep, matrices, identity), out_size, self.mode, self.padding_mode)
        out = img.to(img.dtype if img.is_floating_point() else torch.float32, copy=True)
        if selected.any():
            index = torch.as_tensor(np.flatnonzero(selected), device=img.device)
            out[index] = warp_affine(out[index], matrices[index], None, self.mode, self.padding_mode)
        return out


class BatchedRandAffined(_BatchedRandAffineBase):
    """Random affine (rotation, shear, translation, zoom) drawn independently for every sample.

    All keys of one call share the same per-sample transform (e.g. source and target stay aligned).
    Parameters follow the original kornia-based semantics, in MONAI's ``(Z, Y, X)`` axis order.

    2-D batches ``(B, C, Y, X)`` use the same lists per spatial dimension: ``rotate_range`` entry 0 (the
    (Y, X) plane, as in 3-D), the first two ``shear_range`` entries (MONAI's two 2-D shears),
    ``translate_range`` for (Y, X) and ``scale_range`` as one pair or two (Y, X) pairs. Further entries have no
    axis in 2-D: they must be 0 or None (three scale pairs are rejected), else ``ValueError``.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, [Z,] Y, X)`` tensors.
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
        Magnification factors: ``(min, max)`` for isotropic zoom or one ``(min, max)`` pair per spatial axis
        (three for (Z, Y, X), two for (Y, X)).
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
        if ranges.shape not in ((2,), (2, 2), (3, 2)) or (ranges <= 0).any():
            raise ValueError(
                f"scale_range must be a positive (min, max) pair or one such pair per spatial axis, got {scale_range!r}"
            )
        return ranges

    def _check_2d_ranges(self) -> None:
        """Reject range entries that have no axis in 2-D (beyond 1 rotation, 2 shears, 2 shifts/scales)."""
        for name, ranges, n_2d in (
            ("rotate_range", self.rotate_range, 1),
            ("shear_range", self.shear_range, 2),
            ("translate_range", self.translate_range, 2),
        ):
            if ranges is None or isinstance(ranges, int | float):
                continue
            if any(entry is not None and np.any(np.asarray(entry, dtype=float) != 0) for entry in list(ranges)[n_2d:]):
                raise ValueError(
                    f"{name}={ranges!r}: a 2-D batch (B, C, Y, X) uses only its first {n_2d} entr"
                    f"{'y' if n_2d == 1 else 'ies'}; the others must be 0 or None"
                )
        if self.scale_range is not None and self.scale_range.shape == (3, 2):
            raise ValueError(
                f"scale_range={self.scale_range.tolist()!r} has three (Z, Y, X) pairs but the batch is 2-D "
                "(B, C, Y, X): give one pair or two (Y, X) pairs"
            )

    def draw_params(self, batch_size: int, spatial_shape: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Draw per-sample parameters; magnification ``m`` maps to the output-to-input scale ``1 / m``."""
        n = len(spatial_shape)
        if n == 2:
            self._check_2d_ranges()
        if self.scale_range is not None and self.scale_range.ndim == 2 and len(self.scale_range) != n:
            raise ValueError(
                f"scale_range={self.scale_range.tolist()!r} has {len(self.scale_range)} pairs, "
                f"the batch has {n} spatial axes {tuple(spatial_shape)}"
            )
        widths = (3, 6) if n == 3 else (1, 2)
        rotate = draw_range_params(self.R, batch_size, self.rotate_range, 3)[:, : widths[0]]
        shear = np.tan(draw_range_params(self.R, batch_size, self.shear_range, 6))[:, : widths[1]]
        # content moves by +t voxels: the output-to-input matrix translates by -t
        translate = -draw_range_params(self.R, batch_size, self.translate_range, 3)[:, :n] * np.asarray(spatial_shape)
        if self.scale_range is None:
            magnification = np.ones((batch_size, n))
        elif self.scale_range.shape == (2,):
            magnification = np.repeat(self.R.uniform(*self.scale_range, size=(batch_size, 1)), n, axis=1)
        else:
            magnification = self.R.uniform(self.scale_range[:, 0], self.scale_range[:, 1], size=(batch_size, n))
        return rotate, shear, translate, 1.0 / magnification


class MonaiBatchedRandAffined(_BatchedRandAffineBase):
    """Batched counterpart of ``monai.transforms.RandAffined``: same parameter semantics, per-sample draws.

    Rotations in radians, shear coefficients, translations in voxels and scale factors ``1 + U(-s, s)``
    exactly as MONAI (a number expands to one entry, i.e. the first spatial axis). Used by
    :class:`viscy_transforms.RandAffined` on batched input. On 2-D batches entries beyond the 2-D ones
    (1 rotation, 2 shears, 2 shifts and scales) are ignored, as MONAI does.
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
        """Draw per-sample parameters from MONAI ranges (truncated to the 2-D widths for 2-D batches)."""
        n = len(spatial_shape)
        widths = (3, 6, 3, 3) if n == 3 else (1, 2, 2, 2)
        params = (
            draw_range_params(self.R, batch_size, self.rotate_range, 3),
            draw_range_params(self.R, batch_size, self.shear_range, 6),
            draw_range_params(self.R, batch_size, self.translate_range, 3),
            draw_range_params(self.R, batch_size, self.scale_range, 3, offset=1.0),
        )
        return tuple(p[:, :width] for p, width in zip(params, widths, strict=True))
