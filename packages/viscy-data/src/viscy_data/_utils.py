"""Helpers shared by the data modules: channel lists and collation.

The normalization-metadata helpers live in :mod:`viscy_data.normalization`, the channel-wise batch
transforms in :mod:`viscy_data.batch_transforms` and ``BatchedCenterSpatialCropd`` in
``viscy_transforms``; they are re-exported here under their historical names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from viscy_data._typing import Sample
from viscy_data.batch_transforms import gather_channels as _gather_channels
from viscy_data.batch_transforms import scatter_channels as _scatter_channels
from viscy_data.batch_transforms import transform_channel_wise as _transform_channel_wise
from viscy_data.normalization import read_norm_meta as _read_norm_meta
from viscy_transforms import BatchedCenterSpatialCropd

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
