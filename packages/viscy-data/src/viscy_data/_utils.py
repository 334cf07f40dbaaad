"""Helpers shared by the data modules: channel lists, collation, normalization metadata, batched crops.

``BatchedCenterSpatialCropd`` is re-exported from ``viscy_transforms`` (its home) so that the
historical path ``viscy_data._utils.BatchedCenterSpatialCropd`` keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from viscy_data._typing import DictTransform, NormMeta, Sample
from viscy_transforms._crop import BatchedCenterSpatialCropd

if TYPE_CHECKING:
    from iohub.ngff import Position

__all__ = [
    "BatchedCenterSpatialCropd",
    "_collate_samples",
    "_ensure_channel_list",
    "_gather_channels",
    "_read_norm_meta",
    "_scatter_channels",
    "_search_int_in_str",
    "_transform_channel_wise",
]

NORMALIZATION_LEVELS = ("fov_statistics", "dataset_statistics")


def _ensure_channel_list(str_or_seq: str | Sequence[str]) -> list[str]:
    """Return a list of channel names from one name or an iterable of names."""
    if isinstance(str_or_seq, str):
        return [str_or_seq]
    if not isinstance(str_or_seq, Iterable):
        raise TypeError(f"Channel argument must be a string or sequence of strings. Got {str_or_seq!r}.")
    return list(str_or_seq)


def _search_int_in_str(pattern: str, file_name: str) -> str:
    """Return the first match of ``pattern`` in ``file_name`` (as a string)."""
    match = re.search(pattern, file_name)
    if match is None:
        raise ValueError(f"Cannot find pattern {pattern} in {file_name}.")
    return match.group()


def _collate_samples(batch: Sequence[Sample]) -> Sample:
    """Collate samples, flattening per-sample lists (multi-sample crops) into the batch dimension.

    Only lists are flattened: tuples such as an ``HCSStackIndex`` stay one entry per sample.
    """
    from monai.data.utils import collate_meta_tensor

    collated: dict[str, Any] = {}
    for key in batch[0]:
        flat = []
        for sample in batch:
            value = sample[key]
            if isinstance(value, list):
                flat.extend(value)
            else:
                flat.append(value)
        collated[key] = collate_meta_tensor(flat)
    return collated


def _to_float_tensor(value: Any) -> Any:
    """Recursively convert the leaves of a metadata tree to 0-d float32 tensors."""
    if isinstance(value, dict):
        return {key: _to_float_tensor(item) for key, item in value.items()}
    if isinstance(value, Tensor):
        return value.clone().float()
    return torch.tensor(value, dtype=torch.float32)


def _read_norm_meta(fov: Position) -> NormMeta | None:
    """Read ``.zattrs["normalization"]`` of a position as float32 tensors, or None if absent."""
    norm_meta = fov.zattrs.get("normalization", None)
    if norm_meta is None:
        return None
    return _to_float_tensor(norm_meta)


def _scatter_channels(
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
            from monai.data.utils import collate_meta_tensor

            channels["norm_meta"] = collate_meta_tensor(list(norm_meta))
    return channels


def _gather_channels(patch_channels: dict[str, Tensor | dict]) -> Tensor:
    """Concatenate the channels of a scattered batch along dim 1, dropping ``norm_meta``."""
    patch_channels.pop("norm_meta", None)
    return torch.cat(list(patch_channels.values()), dim=1)


def _transform_channel_wise(
    transform: DictTransform | Callable,
    channel_names: Sequence[str],
    patch: Tensor,
    norm_meta: NormMeta | Sequence[NormMeta] | None,
) -> Tensor:
    """Apply a dictionary transform to a batched ``(B, C, Z, Y, X)`` patch, one key per channel."""
    scattered = _scatter_channels(channel_names, patch, norm_meta)
    return _gather_channels(transform(scattered))


def _stack_norm_meta(metas: Sequence[NormMeta | None]) -> dict | None:
    """Stack per-FOV metadata into one tree of ``(n_fov,)`` tensors (keys common to every FOV).

    Returns None when any FOV has no metadata. Index a leaf with FOV indices to get a batch.
    """
    if not metas or any(meta is None for meta in metas):
        return None

    def stack(trees: list) -> Any:
        if all(isinstance(tree, Tensor) for tree in trees):
            return torch.stack(trees)
        if not all(isinstance(tree, dict) for tree in trees):
            return None
        common = [key for key in trees[0] if all(key in tree for tree in trees[1:])]
        stacked = {key: stack([tree[key] for tree in trees]) for key in common}
        return {key: value for key, value in stacked.items() if value is not None}

    return stack(list(metas))


def _index_norm_meta(stacked: dict | None, fov_indices: Tensor) -> dict | None:
    """Select per-sample metadata from a stacked tree, giving ``(B,)`` leaves."""
    if stacked is None:
        return None
    return {
        key: _index_norm_meta(value, fov_indices) if isinstance(value, dict) else value[fov_indices]
        for key, value in stacked.items()
    }


def _check_norm_meta(transforms: Sequence[Callable], norm_metas: dict[str, NormMeta | None], store: str) -> None:
    """Fail early if a transform normalises with metadata that a FOV of ``store`` lacks.

    A transform needs metadata if it has a ``level`` attribute naming a normalization level
    (e.g. ``viscy_transforms.NormalizeSampled``); its ``keys`` name the channels.
    """
    for transform in transforms:
        level = getattr(transform, "level", None)
        if level not in NORMALIZATION_LEVELS:
            continue
        stats = [getattr(transform, "subtrahend", "mean"), getattr(transform, "divisor", "std")]
        for fov_name, meta in norm_metas.items():
            if meta is None:
                raise ValueError(
                    f"{type(transform).__name__} needs normalization metadata but FOV '{fov_name}' of store "
                    f"'{store}' has no .zattrs['normalization'] (run the preprocess command first)."
                )
            for channel in transform.keys:
                found = meta.get(channel, {}).get(level, {})
                missing = [stat for stat in stats if isinstance(stat, str) and stat not in found]
                if missing:
                    raise ValueError(
                        f"FOV '{fov_name}' of store '{store}': normalization metadata has no "
                        f"{channel}/{level}/{missing} needed by {type(transform).__name__}."
                    )
