"""Normalisation with precomputed statistics carried in the sample's ``norm_meta``."""

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from viscy_transforms._base import MapTransform

__all__ = ["NormalizeSampled"]

_EPS = 1e-8


class NormalizeSampled(MapTransform):
    """Normalise each key with statistics from ``sample["norm_meta"][key][level]``.

    ``x <- (x - stats[subtrahend]) / (stats[divisor] + 1e-8)``. A 0-d statistic (per-sample pipelines)
    broadcasts as a scalar; a ``(B,)`` statistic (batched pipelines, collated ``norm_meta``) normalises each
    sample of a ``(B, ...)`` batch with its own value.

    Parameters
    ----------
    keys : Sequence[str] | str
        Channel keys to normalise; each must also be a channel name in ``norm_meta``.
    level : {"fov_statistics", "dataset_statistics"}
        Which statistics level of ``norm_meta`` to use.
    subtrahend : str
        Name of the statistic subtracted (e.g. ``"mean"``, ``"median"``).
    divisor : str
        Name of the statistic divided by (e.g. ``"std"``, ``"iqr"``).
    remove_meta : bool
        Drop ``"norm_meta"`` from the returned sample.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        level: Literal["fov_statistics", "dataset_statistics"],
        subtrahend: str = "mean",
        divisor: str = "std",
        remove_meta: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys=False)
        self.level = level
        self.subtrahend = subtrahend
        self.divisor = divisor
        self.remove_meta = remove_meta

    def _statistic(self, sample: Mapping[Hashable, object], key: Hashable, name: str, image: Tensor) -> Tensor:
        norm_meta = sample.get("norm_meta")
        if not isinstance(norm_meta, Mapping):
            raise KeyError(f"NormalizeSampled: sample has no 'norm_meta' dict to normalise key '{key}'")
        try:
            value = norm_meta[key][self.level][name]
        except (KeyError, TypeError) as error:
            raise KeyError(
                f"NormalizeSampled: norm_meta has no statistic ['{key}']['{self.level}']['{name}'] "
                f"(channels in norm_meta: {sorted(map(str, norm_meta))})"
            ) from error
        stat = torch.as_tensor(value, device=image.device)
        if stat.ndim > 1 or (stat.numel() > 1 and stat.shape[0] != image.shape[0]):
            raise ValueError(
                f"NormalizeSampled: statistic '{name}' of key '{key}' must be 0-d or (B,) for an image of shape "
                f"{tuple(image.shape)}, got shape {tuple(stat.shape)}"
            )
        return stat.reshape(stat.shape + (1,) * (image.ndim - stat.ndim))

    def __call__(self, sample: Mapping[Hashable, object]) -> dict[Hashable, object]:
        """Normalise every key; other entries are kept (``norm_meta`` too unless ``remove_meta``)."""
        d = dict(sample)
        for key in self.keys:
            if key not in d:
                raise KeyError(f"NormalizeSampled: key '{key}' not in sample (keys: {sorted(map(str, d))})")
            image = d[key]
            if not isinstance(image, Tensor):
                raise TypeError(f"NormalizeSampled: key '{key}' must be a torch.Tensor, got {type(image).__name__}")
            subtrahend = self._statistic(d, key, self.subtrahend, image)
            divisor = self._statistic(d, key, self.divisor, image)
            d[key] = (image - subtrahend.to(image.dtype)) / (divisor.to(image.dtype) + _EPS)
        if self.remove_meta:
            d.pop("norm_meta", None)
        return d
