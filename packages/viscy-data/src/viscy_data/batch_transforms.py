"""Apply per-channel dictionary transforms to whole ``(B, C, Z, Y, X)`` batches.

Datasets that read a whole batch at once (``__getitems__``) are loaded with
:func:`identity_collate`; the batch is then split into one ``(B, 1, ...)`` tensor per channel
name, passed through a dictionary transform (normalization, batched augmentations, crop) together
with its collated normalization metadata, and concatenated back (:func:`transform_channel_wise`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data.utils import collate_meta_tensor
from torch import Tensor

from viscy_data._typing import DictTransform
from viscy_data.normalization import NormMeta

__all__ = ["identity_collate", "transform_channel_wise"]


def identity_collate(batch: Any) -> Any:
    """Collate function for datasets that already return a batched dict."""
    return batch


def scatter_channels(
    channel_names: Sequence[str], patch: Tensor, norm_meta: NormMeta | Sequence[NormMeta] | None
) -> dict[str, Tensor | dict]:
    """Split a ``(B, C, ...)`` batch into ``{channel_name: (B, 1, ...)}`` plus collated ``norm_meta``.

    ``norm_meta`` may be a list of per-sample metadata (collated here) or metadata already collated
    to ``(B,)`` tensors.
    """
    if patch.shape[1] != len(channel_names):
        raise ValueError(f"Patch has {patch.shape[1]} channels but {len(channel_names)} names: {list(channel_names)}")
    channels: dict[str, Tensor | dict] = {name: patch[:, i : i + 1] for i, name in enumerate(channel_names)}
    if norm_meta is not None:
        if isinstance(norm_meta, dict):
            channels["norm_meta"] = norm_meta
        else:
            if any(meta is None for meta in norm_meta):
                raise ValueError("Some samples of the batch have no normalization metadata.")
            channels["norm_meta"] = collate_meta_tensor(list(norm_meta))
    return channels


def gather_channels(patch_channels: dict[str, Tensor | dict]) -> Tensor:
    """Concatenate the channels of a scattered batch along dim 1, dropping ``norm_meta``."""
    patch_channels.pop("norm_meta", None)
    return torch.cat(list(patch_channels.values()), dim=1)


def transform_channel_wise(
    transform: DictTransform | Callable,
    channel_names: Sequence[str],
    patch: Tensor,
    norm_meta: NormMeta | Sequence[NormMeta] | None,
) -> Tensor:
    """Apply a dictionary transform to a batched ``(B, C, Z, Y, X)`` patch, one key per channel."""
    scattered = scatter_channels(channel_names, patch, norm_meta)
    return gather_channels(transform(scattered))
