"""The ``.zattrs["normalization"]`` metadata of HCS plates: its schema, its writer and its reader.

Each plate and each FOV holds, per channel name, statistics per level::

    .zattrs["normalization"] = {channel: {level: {stat: value}}}

with the levels ``"dataset_statistics"`` (the whole plate), ``"fov_statistics"`` (the FOV; FOVs
only) and ``"timepoint_statistics"`` (``{"<t>": stats}``), and stats such as ``mean``, ``std``,
``median`` and ``iqr``. :func:`write_norm_meta` is the one writer (used by the ``preprocess``
command and by :mod:`viscy_data.testing`); :func:`read_norm_meta` reads a FOV's metadata as
float32 tensors (the :data:`NormMeta` the data modules pass to the normalizing transforms).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from viscy_transforms.normalization_types import ChannelNormStats, LevelNormStats, NormMeta

if TYPE_CHECKING:
    from iohub.ngff import Position

__all__ = [
    "NORMALIZATION_LEVELS",
    "ChannelNormStats",
    "LevelNormStats",
    "NormMeta",
    "check_norm_meta",
    "index_norm_meta",
    "read_norm_meta",
    "stack_norm_meta",
    "write_norm_meta",
]

NORMALIZATION_LEVELS = ("fov_statistics", "dataset_statistics")
"""Levels a normalizing transform can name (its ``level`` attribute)."""


def write_norm_meta(node: Any, channel_name: str, levels: Mapping[str, Any]) -> None:
    """Merge ``levels`` into ``node.zattrs["normalization"][channel_name]``.

    Levels already stored for the channel are kept unless ``levels`` has them, other channels are
    kept, and the attribute is written back as a whole so that the store persists it.

    Parameters
    ----------
    node : iohub Plate or Position
        Node with ``zattrs``, open for writing.
    channel_name : str
        Channel the statistics belong to.
    levels : Mapping[str, Any]
        ``{level: stats}``, e.g. ``{"dataset_statistics": {"mean": 1.0, ...}, "fov_statistics": {...}}``
        (plain numbers, JSON-serialisable).
    """
    field = dict(node.zattrs.get("normalization", {}))
    field[channel_name] = {**field.get(channel_name, {}), **levels}
    node.zattrs["normalization"] = field


def _to_float_tensor(value: Any) -> Any:
    """Recursively convert the leaves of a metadata tree to 0-d float32 tensors."""
    if isinstance(value, dict):
        return {key: _to_float_tensor(item) for key, item in value.items()}
    if isinstance(value, Tensor):
        return value.clone().float()
    return torch.tensor(value, dtype=torch.float32)


def read_norm_meta(fov: Position) -> NormMeta | None:
    """Read ``.zattrs["normalization"]`` of a position as float32 tensors, or None if absent."""
    norm_meta = fov.zattrs.get("normalization", None)
    if norm_meta is None:
        return None
    return _to_float_tensor(norm_meta)


def stack_norm_meta(metas: Sequence[NormMeta | None]) -> dict | None:
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


def index_norm_meta(stacked: dict | None, fov_indices: Tensor) -> dict | None:
    """Select per-sample metadata from a stacked tree, giving ``(B,)`` leaves."""
    if stacked is None:
        return None
    return {
        key: index_norm_meta(value, fov_indices) if isinstance(value, dict) else value[fov_indices]
        for key, value in stacked.items()
    }


def check_norm_meta(transforms: Sequence[Callable], norm_metas: dict[str, NormMeta | None], store: str) -> None:
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
