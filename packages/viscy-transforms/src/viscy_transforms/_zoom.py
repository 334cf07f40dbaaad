"""Interpolation-based zoom of batched tensors."""

from collections.abc import Hashable, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from viscy_transforms._base import MapTransform, Transform, check_batched

__all__ = ["BatchedZoom", "BatchedZoomd"]


class BatchedZoom(Transform):
    """Resize a batched ``(B, C, *spatial)`` tensor with ``torch.nn.functional.interpolate``.

    Parameters
    ----------
    scale_factor : float | Sequence[float]
        Zoom factor(s) of the spatial dims.
    mode : str
        Interpolation mode (``"nearest"``, ``"trilinear"``, ``"area"``, ...).
    align_corners, recompute_scale_factor, antialias
        Passed to ``interpolate``.
    """

    def __init__(
        self,
        scale_factor: float | Sequence[float],
        mode: str,
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
        antialias: bool = False,
    ) -> None:
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self.antialias = antialias

    def __call__(self, sample: Tensor) -> Tensor:
        """Zoom ``sample``."""
        sample = check_batched("img", sample, (3, 4, 5))
        return F.interpolate(
            sample,
            scale_factor=self.scale_factor,
            mode=self.mode,
            align_corners=self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
            antialias=self.antialias,
        )


class BatchedZoomd(MapTransform):
    """Dictionary version of :class:`BatchedZoom` (every key must be present)."""

    def __init__(
        self,
        keys: Sequence[str] | str,
        scale_factor: float | Sequence[float],
        mode: str,
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
        antialias: bool = False,
    ) -> None:
        super().__init__(keys)
        self.transform = BatchedZoom(scale_factor, mode, align_corners, recompute_scale_factor, antialias)

    def __call__(self, sample: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Zoom every key."""
        d = dict(sample)
        for key in self.key_iterator(d):
            d[key] = self.transform(check_batched(key, d[key], (3, 4, 5)))
        return d
