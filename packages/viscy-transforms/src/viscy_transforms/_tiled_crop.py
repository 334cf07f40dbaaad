"""Deterministic non-overlapping tiles of a per-sample volume, as several samples."""

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.transforms import MapTransform
from monai.transforms.traits import MultiSampleTrait
from torch import Tensor

__all__ = ["TiledSpatialCropSamplesd"]


class TiledSpatialCropSamplesd(MapTransform, MultiSampleTrait):
    """Cut the first ``num_samples`` non-overlapping ``roi_size`` tiles (raster order) of a ``(C, D, H, W)`` sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of per-sample ``(C, D, H, W)`` tensors (same spatial shape) cropped identically.
    roi_size : Sequence[int]
        Tile size ``(D, H, W)``.
    num_samples : int
        Number of tiles returned; must not exceed the number of tiles on the grid ``spatial // roi_size``.
    """

    def __init__(self, keys: Sequence[str] | str, roi_size: Sequence[int], num_samples: int) -> None:
        super().__init__(keys, allow_missing_keys=False)
        self.roi_size = tuple(int(r) for r in roi_size)
        if len(self.roi_size) != 3 or min(self.roi_size) < 1:
            raise ValueError(f"roi_size must be 3 positive sizes (D, H, W), got {roi_size!r}")
        self.num_samples = num_samples

    def __call__(self, sample: Mapping[Hashable, object]) -> list[dict[Hashable, object]]:
        """Return ``num_samples`` dicts; non-key entries (e.g. ``norm_meta``) are shared by every tile."""
        images = {}
        for key in self.key_iterator(sample):
            image = sample[key]
            if not isinstance(image, Tensor) or image.ndim != 4:
                shape = tuple(getattr(image, "shape", ()))
                raise ValueError(f"TiledSpatialCropSamplesd: key '{key}' must be a (C, D, H, W) tensor, got {shape}")
            images[key] = image
        shapes = {tuple(image.shape[1:]) for image in images.values()}
        if len(shapes) != 1:
            raise ValueError(f"TiledSpatialCropSamplesd: keys must share one spatial shape, got {shapes}")
        grid = np.asarray(shapes.pop()) // np.asarray(self.roi_size)
        n_tiles = int(np.prod(grid))
        if self.num_samples > n_tiles:
            raise ValueError(
                f"Number of samples {self.num_samples} should be smaller than the number of tiles {n_tiles} "
                f"(grid {tuple(grid)} of roi {self.roi_size})"
            )
        origins = np.stack(np.unravel_index(np.arange(self.num_samples), grid), axis=1) * np.asarray(self.roi_size)
        results = []
        for origin in origins:
            window = tuple(slice(int(o), int(o) + r) for o, r in zip(origin, self.roi_size, strict=True))
            tile = dict(sample)
            for key, image in images.items():
                tile[key] = image[(slice(None), *window)]
            results.append(tile)
        return results
