"""Random local pixel shuffling (permute voxels inside small random cubes or squares) of batched tensors."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import BatchedRandDict, BatchedRandomTransform

__all__ = ["BatchedRandLocalPixelShufflingd"]

_MAX_PATCHES = 100


class _BatchedRandLocalPixelShuffling(BatchedRandomTransform):
    """Permute the voxels of random ``patch_size`` cubes of each selected sample (same permutation per channel)."""

    channel_independent = True

    def __init__(self, patch_size: int, shuffle_prob: float, prob: float) -> None:
        super().__init__(prob)
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.patch_size = patch_size
        self.shuffle_prob = shuffle_prob
        self._origins: np.ndarray | None = None
        self._permutations: np.ndarray | None = None
        self._patch: tuple[int, ...] | None = None
        self._active = False

    def randomize(self, img: Tensor) -> None:
        """Draw per-sample patch origins and voxel permutations; unselected samples get identity permutations."""
        batch_size, spatial = img.shape[0], np.asarray(img.shape[2:])
        selected = self.draw_selected(batch_size)
        patch = np.minimum(self.patch_size, spatial)
        n_patches = min(int(self.shuffle_prob * spatial.prod() / self.patch_size ** len(spatial)), _MAX_PATCHES)
        n_voxels = int(patch.prod())
        self._patch = tuple(int(p) for p in patch)
        self._origins = self.R.randint(0, spatial - patch + 1, size=(n_patches, batch_size, len(spatial)))
        permutations = np.argsort(self.R.random_sample((n_patches, batch_size, n_voxels)), axis=-1)
        permutations[:, ~selected] = np.arange(n_voxels)
        self._permutations = permutations
        self._active = bool(selected.any()) and n_patches > 0

    def apply(self, img: Tensor) -> Tensor:
        """Shuffle the drawn patches in sequence."""
        if not self._active:
            return img
        batch_size, channels = img.shape[:2]
        if len(self._patch) != img.ndim - 2:
            raise ValueError(f"patches were drawn for {len(self._patch)} spatial dims, got {tuple(img.shape)}")
        spatial = img.shape[2:]
        # row-major strides of the flattened spatial dims
        strides = torch.tensor([int(np.prod(spatial[axis + 1 :])) for axis in range(len(spatial))], device=img.device)
        offsets = (
            torch.stack(
                torch.meshgrid(*(torch.arange(p, device=img.device) for p in self._patch), indexing="ij"), dim=-1
            ).reshape(-1, len(self._patch))
            @ strides
        )
        origins = torch.as_tensor(self._origins, device=img.device) @ strides  # (n, B)
        permutations = torch.as_tensor(self._permutations, device=img.device)
        flat = img.flatten(2).clone()
        for origin, permutation in zip(origins, permutations, strict=True):
            target = origin[:, None] + offsets[None, :]  # (B, P)
            source = target.gather(1, permutation)
            values = flat.gather(2, source[:, None].expand(batch_size, channels, -1))
            flat.scatter_(2, target[:, None].expand(batch_size, channels, -1), values)
        return flat.view_as(img)


class BatchedRandLocalPixelShufflingd(BatchedRandDict):
    """Shuffle voxels inside small random cubes of each selected sample (same patches for all its keys).

    On 2-D ``(B, C, Y, X)`` batches the patches are squares.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, [Z,] Y, X)`` tensors.
    patch_size : int
        Edge length of the cubes (squares in 2-D), clipped to each spatial dim.
    shuffle_prob : float
        Fraction of the volume covered: ``min(int(shuffle_prob * Z*Y*X / patch_size**3), 100)`` cubes
        (``Y*X / patch_size**2`` squares in 2-D).
    prob : float
        Probability that a sample is shuffled (independent per sample).
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        patch_size: int = 3,
        shuffle_prob: float = 0.1,
        prob: float = 0.1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, _BatchedRandLocalPixelShuffling(patch_size, shuffle_prob, prob), allow_missing_keys)
