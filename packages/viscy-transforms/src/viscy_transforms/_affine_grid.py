"""Batched 2-D and 3-D affine matrices and warping with MONAI's conventions.

Conventions (as ``monai.transforms.Affine``): spatial axes are in array order ``(Z, Y, X)`` (``(Y, X)`` in 2-D);
coordinates are voxel units centred on the image; the matrix ``R @ Sh @ T @ Sc`` maps an output voxel to the
input position it samples (so a scale factor > 1 shrinks the content); rotation angles are radians,
``rotate[0]`` turning the plane of the last two axes (Y, X), ``rotate[1]`` the (Z, X) plane and ``rotate[2]``
the (Z, Y) plane. In 2-D there is one angle (the (Y, X) plane) and two shears, (Y, X) then (X, Y).
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["affine_matrices", "centered_grid", "draw_range_params", "resample_at", "warp_affine"]

_INTERPOLATION_MODES = ("bilinear", "nearest")
_PADDING_MODES = ("zeros", "border", "reflection")
# (row, col) of MONAI's elementary shears (6 in 3-D, 2 in 2-D), composed in this order (first one applied first)
_SHEAR_POSITIONS = {3: ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)), 2: ((0, 1), (1, 0))}


def draw_range_params(
    rng: np.random.RandomState, batch_size: int, ranges: Sequence | float | None, size: int, offset: float = 0.0
) -> np.ndarray:
    """Draw ``(batch_size, size)`` parameters from MONAI-style ranges.

    Each entry of ``ranges`` is a number ``v`` (drawn from ``U(-v, v)``), a ``(min, max)`` pair or None (no
    change); missing trailing entries are 0. ``offset`` is added to every value (1.0 for scale factors).
    """
    params = np.zeros((batch_size, size))
    if ranges is not None:
        entries = [ranges] if isinstance(ranges, int | float) else list(ranges)
        if len(entries) > size:
            raise ValueError(f"expected at most {size} range entries, got {ranges!r}")
        for axis, entry in enumerate(entries):
            if entry is None:
                continue
            if isinstance(entry, int | float):
                low, high = -abs(entry), abs(entry)
            elif len(entry) == 2:
                low, high = entry
            else:
                raise ValueError(f"range entries must be a number or a (min, max) pair, got {entry!r} in {ranges!r}")
            params[:, axis] = rng.uniform(low, high, batch_size)
    return params + offset


def _rotation(axis_a: int, axis_b: int, angle: Tensor) -> Tensor:
    """Rotations by ``angle`` (B,) in the plane of spatial axes (a, b), shape (B, 3, 3)."""
    rot = torch.eye(3, dtype=angle.dtype, device=angle.device).repeat(len(angle), 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot[:, axis_a, axis_a], rot[:, axis_a, axis_b] = cos, -sin
    rot[:, axis_b, axis_a], rot[:, axis_b, axis_b] = sin, cos
    return rot


def affine_matrices(rotate: Tensor, shear: Tensor, translate: Tensor, scale: Tensor) -> Tensor:
    """Compose per-sample ``(B, n + 1, n + 1)`` matrices ``R @ Sh @ T @ Sc`` (MONAI ``Affine`` order), n = 2 or 3.

    Parameters
    ----------
    rotate : Tensor
        ``(B, 3)`` angles in radians (MONAI "XYZ" intrinsic order, see module docstring); ``(B, 1)`` in 2-D.
    shear : Tensor
        ``(B, 6)`` shear coefficients; as in MONAI the six elementary shears (rows, cols) (0,1), (0,2), (1,0),
        (1,2), (2,0), (2,1) are composed in that order (determinant 1). 2-D: ``(B, 2)``, the elementary
        shears (0,1) then (1,0), as MONAI's.
    translate : Tensor
        ``(B, n)`` shifts in voxels along ``([Z,] Y, X)``; its width sets the dimensionality.
    scale : Tensor
        ``(B, n)`` scale factors along ``([Z,] Y, X)``.
    """
    batch, n, dtype, device = len(rotate), translate.shape[1], rotate.dtype, rotate.device
    if n == 2:
        linear = _rotation(0, 1, rotate[:, 0])[:, :2, :2]
    else:
        # MONAI's "x" rotation turns axes (1, 2); its "y" rotation is (2, 0) in this sign convention; "z" is (0, 1)
        linear = _rotation(1, 2, rotate[:, 0]) @ _rotation(2, 0, rotate[:, 1]) @ _rotation(0, 1, rotate[:, 2])
    shear_matrix = torch.eye(n, dtype=dtype, device=device).repeat(batch, 1, 1)
    for index, (row, col) in enumerate(_SHEAR_POSITIONS[n]):
        elementary = torch.eye(n, dtype=dtype, device=device).repeat(batch, 1, 1)
        elementary[:, row, col] = shear[:, index]
        shear_matrix = elementary @ shear_matrix
    linear = linear @ shear_matrix
    matrices = torch.eye(n + 1, dtype=dtype, device=device).repeat(batch, 1, 1)
    matrices[:, :n, :n] = linear * scale[:, None, :]
    matrices[:, :n, n] = (linear @ translate[:, :, None])[:, :, 0]
    return matrices


def _check_modes(mode: str, padding_mode: str) -> None:
    if mode not in _INTERPOLATION_MODES:
        raise ValueError(f"batched resampling supports mode in {_INTERPOLATION_MODES}, got {mode!r}")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"batched resampling supports padding_mode in {_PADDING_MODES}, got {padding_mode!r}")


def centered_grid(spatial_size: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Voxel coordinates centred on the volume, shape ``(n, *spatial_size)`` (MONAI ``create_grid``)."""
    axes = [torch.linspace(-(n - 1) / 2, (n - 1) / 2, n, dtype=dtype, device=device) for n in spatial_size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def resample_at(img: Tensor, coords: Tensor, mode: str = "bilinear", padding_mode: str = "reflection") -> Tensor:
    """Sample ``img`` ``(B, C, [Z,] Y, X)`` at centred voxel coordinates ``coords`` ``(B, n, *out)`` ([Z,] Y, X)."""
    _check_modes(mode, padding_mode)
    n_spatial = img.ndim - 2
    scale = torch.tensor([2 / max(2, n) for n in img.shape[2:]], dtype=coords.dtype, device=coords.device)
    normalized = coords * scale.view(1, n_spatial, *(1,) * n_spatial)
    grid = normalized.flip(1).movedim(1, -1)  # (B, *out, ([x, y,] z))
    return F.grid_sample(img, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def warp_affine(
    img: Tensor,
    matrices: Tensor,
    spatial_size: Sequence[int] | None = None,
    mode: str = "bilinear",
    padding_mode: str = "reflection",
) -> Tensor:
    """Resample ``img`` ``(B, C, [Z,] Y, X)`` with per-sample output-to-input matrices ``(B, n + 1, n + 1)``.

    Matches ``monai.transforms.Resample`` (``norm_coords=True``, ``align_corners=False``): a centred input
    coordinate ``c`` along an axis of size ``n`` is sampled at normalised position ``2 c / max(2, n)``.
    """
    _check_modes(mode, padding_mode)
    in_size = img.shape[2:]
    out_size = tuple(in_size if spatial_size is None else spatial_size)
    dtype = img.dtype if img.is_floating_point() else torch.float32
    img = img.to(dtype)
    matrices = matrices.to(dtype)
    # affine_grid (align_corners=False) yields normalised output coords u = c_out * 2 / n_out
    denorm_out = torch.diag(torch.tensor([n / 2 for n in out_size] + [1.0], dtype=dtype, device=img.device))
    norm_in = torch.diag(torch.tensor([2 / max(2, n) for n in in_size] + [1.0], dtype=dtype, device=img.device))
    theta_zyx = norm_in @ matrices @ denorm_out
    # grid_sample orders grid coordinates (x, y, z): reverse the spatial axes
    n_spatial = len(in_size)
    order = torch.tensor([*reversed(range(n_spatial)), n_spatial], device=img.device)
    theta_xyz = theta_zyx[:, order][:, :, order][:, :n_spatial]
    grid = F.affine_grid(theta_xyz, [img.shape[0], img.shape[1], *out_size], align_corners=False)
    return F.grid_sample(img, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
