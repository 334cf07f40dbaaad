"""Center and random spatial crops of batched ``(B, C, *spatial)`` tensors."""

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import (
    MapTransform,
    Randomizable,
    Transform,
    check_batched,
    fall_back_size,
    not_drawn_message,
    present_batched_keys,
    seed_from_global_rng,
)

__all__ = [
    "BatchedCenterSpatialCrop",
    "BatchedCenterSpatialCropd",
    "BatchedRandSpatialCrop",
    "BatchedRandSpatialCropd",
]


class BatchedCenterSpatialCrop(Transform):
    """Center-crop the spatial dims ``img.shape[2:]`` of a batched ``(B, C, *spatial)`` tensor.

    Parameters
    ----------
    roi_size : Sequence[int] | int
        Spatial size of the crop. A non-positive entry, or one larger than the image, keeps that dimension
        (MONAI's ``CenterSpatialCrop`` slices).
    """

    def __init__(self, roi_size: Sequence[int] | int) -> None:
        self.roi_size = roi_size

    def compute_slices(self, spatial_size: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the centred crop of an image of ``spatial_size`` (clipped to the image)."""
        roi_size = fall_back_size(self.roi_size, spatial_size)
        starts = [max(size // 2 - roi // 2, 0) for size, roi in zip(spatial_size, roi_size, strict=False)]
        return tuple(slice(start, start + roi) for start, roi in zip(starts, roi_size, strict=False))

    def __call__(self, img: Tensor, lazy: bool | None = None) -> Tensor:
        """Crop ``img`` (2-D or 3-D spatial) and return a plain tensor view on the same device.

        ``lazy`` is accepted for MONAI compatibility and ignored (batched crops are applied at once).
        """
        img = check_batched("img", img)
        slices = self.compute_slices(img.shape[2:])
        return img[(slice(None), slice(None), *slices)]


class BatchedCenterSpatialCropd(MapTransform):
    """Dictionary version of :class:`BatchedCenterSpatialCrop` (the final crop of DynaCLR/triplet batches).

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of the batched ``(B, C, *spatial)`` tensors to crop.
    roi_size : Sequence[int] | int
        Spatial size of the crop, e.g. ``(z_window, y, x)``.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(self, keys: Sequence[str] | str, roi_size: Sequence[int] | int, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.cropper = BatchedCenterSpatialCrop(roi_size)

    def __call__(self, data: Mapping[Hashable, Tensor], lazy: bool | None = None) -> dict[Hashable, Tensor]:
        """Crop every present key; other entries are left untouched."""
        d = dict(data)
        for key in present_batched_keys(self, d):
            d[key] = self.cropper(d[key])
        return d


class BatchedRandSpatialCrop(Randomizable, Transform):
    """Crop a fixed-size window at a random position drawn independently for every sample.

    Works on 2-D ``(B, C, Y, X)`` and 3-D ``(B, C, Z, Y, X)`` batches.

    Parameters
    ----------
    roi_size : Sequence[int] | int
        Crop size ``([Z,] Y, X)``; non-positive entries keep the image size, larger ones are clipped to it.
    max_roi_size : Sequence[int] | int | None
        Only meaningful with ``random_size``, which batched crops do not support.
    random_center : bool
        Random position per sample if True, else the center crop for every sample.
    random_size : bool
        Must be False: all samples of a batch share one crop size.
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        max_roi_size: Sequence[int] | int | None = None,
        random_center: bool = True,
        random_size: bool = False,
    ) -> None:
        if random_size:
            raise ValueError("Batched transform does not support random size.")
        self.roi_size = roi_size
        self.max_roi_size = max_roi_size
        self.random_center = random_center
        self.random_size = random_size
        self._starts: np.ndarray | None = None
        self._crop_size: tuple[int, ...] | None = None
        seed_from_global_rng(self)

    def randomize(self, img_size: Sequence[int], batch_size: int = 1) -> None:
        """Draw the crop origin of each of ``batch_size`` samples for spatial size ``img_size`` ``([Z,] Y, X)``."""
        if len(img_size) not in (2, 3):
            raise ValueError(
                f"BatchedRandSpatialCrop supports 2-D (Y, X) and 3-D (Z, Y, X) data, got spatial size {tuple(img_size)}"
            )
        if not isinstance(self.roi_size, int) and len(self.roi_size) != len(img_size):
            raise ValueError(f"roi_size {self.roi_size!r} does not match the spatial size {tuple(img_size)}")
        size = np.asarray(img_size)
        crop = np.minimum(np.asarray(fall_back_size(self.roi_size, img_size)), size)
        if self.random_center:
            starts = self.R.randint(0, size - crop + 1, size=(batch_size, len(size)))
        else:
            starts = np.broadcast_to((size - crop) // 2, (batch_size, len(size)))
        self._starts, self._crop_size = starts.astype(np.int64), tuple(int(c) for c in crop)

    def __call__(self, img: Tensor, randomize: bool = True, lazy: bool | None = None) -> Tensor:
        """Crop ``img`` ``(B, C, [Z,] Y, X)`` at the per-sample origins (drawn now if ``randomize``)."""
        img = check_batched("img", img)
        if randomize:
            self.randomize(img.shape[2:], batch_size=img.shape[0])
        if self._starts is None or self._crop_size is None:
            raise RuntimeError(not_drawn_message(self))
        if self._starts.shape != (img.shape[0], img.ndim - 2):
            raise ValueError(
                f"crop origins were drawn for {len(self._starts)} samples of {self._starts.shape[1]} spatial dims, "
                f"got batch {tuple(img.shape)}"
            )
        n_spatial = img.ndim - 2
        starts = torch.as_tensor(self._starts, device=img.device)
        # one index per spatial axis, shaped (B, 1, .., n_axis, .., 1) so that they broadcast to (B, *crop)
        index = []
        for axis, n in enumerate(self._crop_size):
            shape = [1] * n_spatial
            shape[axis] = n
            index.append((starts[:, axis, None] + torch.arange(n, device=img.device)).view(-1, *shape))
        batch = torch.arange(img.shape[0], device=img.device).view(-1, *(1,) * n_spatial)
        # advanced indices around the channel slice put the indexed dims first: (B, *crop, C)
        patches = img[(batch, slice(None), *index)]
        return patches.movedim(-1, 1)


class BatchedRandSpatialCropd(MapTransform, Randomizable):
    """Dictionary version of :class:`BatchedRandSpatialCrop`: every key gets the same per-sample crops.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of batched ``(B, C, [Z,] Y, X)`` tensors with identical spatial shapes.
    roi_size, max_roi_size, random_center, random_size
        See :class:`BatchedRandSpatialCrop`.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        roi_size: Sequence[int] | int,
        max_roi_size: Sequence[int] | int | None = None,
        random_center: bool = True,
        random_size: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cropper = BatchedRandSpatialCrop(roi_size, max_roi_size, random_center, random_size)
        seed_from_global_rng(self)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Reseed this transform and its cropper."""
        super().set_random_state(seed, state)
        self.cropper.set_random_state(seed, state)
        return self

    def randomize(self, img_size: Sequence[int], batch_size: int = 1) -> None:
        """Draw the per-sample crop origins for spatial size ``img_size``."""
        self.cropper.randomize(img_size, batch_size)

    def __call__(self, data: Mapping[Hashable, Tensor], lazy: bool | None = None) -> dict[Hashable, Tensor]:
        """Draw crops from the first present key's shape, then crop every key identically."""
        d = dict(data)
        keys = present_batched_keys(self, d)
        if not keys:
            return d
        shapes = {key: tuple(d[key].shape[2:]) for key in keys}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"BatchedRandSpatialCropd: keys must share one spatial shape, got {shapes}")
        self.cropper.randomize(d[keys[0]].shape[2:], batch_size=d[keys[0]].shape[0])
        for key in keys:
            d[key] = self.cropper(d[key], randomize=False)
        return d
