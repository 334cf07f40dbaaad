"""Rewrite an HCS OME-Zarr plate with patch-friendly chunks.

Microscope pipelines write one chunk per ``(t, c, z)`` frame, so reading a 160 x 160 cell patch out of
a 2048 x 2048 frame decodes about 160 times more pixels than it uses. :func:`rechunk_plate` copies a
plate to small YX chunks (default ``(1, 1, 1, 256, 256)``); an OME-Zarr 0.5 (Zarr v3) copy groups the
chunks of a frame into one shard, so the store keeps one file per frame. Channel names, coordinate
transforms and every non-OME attribute (e.g. ``normalization``) are copied, and the copy is verified
pixel for pixel. The source is opened read-only and an existing target is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from iohub.ngff import open_ome_zarr

__all__ = ["DEFAULT_PATCH_CHUNKS", "rechunk_plate"]

_logger = logging.getLogger(__name__)

DEFAULT_PATCH_CHUNKS = (1, 1, 1, 256, 256)
"""Default ``(T, C, Z, Y, X)`` chunks of :func:`rechunk_plate`."""

_OME_KEYS = {"ome", "plate", "well", "multiscales", "omero"}


def _copy_attributes(source, target) -> None:
    """Copy the attributes that iohub does not manage itself (e.g. ``normalization``)."""
    for key, value in source.zattrs.items():
        if key not in _OME_KEYS:
            target.zattrs[key] = value


def _chunks_for(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    return tuple(min(int(c), int(s)) for c, s in zip(chunks, shape, strict=True))


def _frame_shards_ratio(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """Shard ratio that makes one shard per ``(t, c, z)`` frame (the whole YX plane)."""
    return (1, 1, 1, math.ceil(shape[3] / chunks[3]), math.ceil(shape[4] / chunks[4]))


def _check_inputs(source: Path, target: Path, chunks: Sequence[int]) -> None:
    if not source.exists():
        raise FileNotFoundError(f"Source plate '{source}' does not exist.")
    if target.exists():
        raise FileExistsError(f"Target '{target}' already exists; rechunk never overwrites, choose a new path.")
    if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
        raise ValueError(f"Target '{target}' must lie outside the source plate '{source}'.")
    if len(chunks) != 5 or any(int(c) < 1 for c in chunks):
        raise ValueError(f"chunks must be 5 positive integers (T, C, Z, Y, X), got {tuple(chunks)}.")


def rechunk_plate(
    source: str | Path,
    target: str | Path,
    chunks: Sequence[int] = DEFAULT_PATCH_CHUNKS,
    shard_frames: bool = True,
) -> Path:
    """Copy an HCS plate to ``target`` with ``chunks``, then verify the copy pixel for pixel.

    Parameters
    ----------
    source : str | Path
        HCS OME-Zarr plate, version 0.4 (Zarr v2) or 0.5 (Zarr v3); only read.
    target : str | Path
        Path of the new plate; must not exist. It gets the source's OME-Zarr version.
    chunks : Sequence[int]
        ``(T, C, Z, Y, X)`` chunk shape, clipped to each array's shape.
    shard_frames : bool
        For OME-Zarr 0.5, store the chunks of each ``(t, c, z)`` frame in one shard (one file per
        frame, like the source). Ignored for 0.4, whose Zarr v2 has no shards.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    FileExistsError
        If ``target`` exists (checked before anything is written).
    RuntimeError
        If the copy differs from the source; the target is left in place for inspection.
    """
    source, target = Path(source), Path(target)
    _check_inputs(source, target, chunks)
    with open_ome_zarr(source, layout="hcs", mode="r") as plate:
        version = plate.version
        with open_ome_zarr(target, layout="hcs", mode="w-", channel_names=plate.channel_names, version=version) as copy:
            _copy_attributes(plate, copy)
            for name, position in plate.positions():
                row, column, fov = name.split("/")
                new_position = copy.create_position(row, column, fov)
                transforms = {d.path: d.coordinate_transformations for d in position.metadata.multiscales[0].datasets}
                for key in position.array_keys():
                    array = position[key]
                    array_chunks = _chunks_for(array.shape, chunks)
                    frame_shards = shard_frames and version == "0.5"
                    shards = _frame_shards_ratio(array.shape, array_chunks) if frame_shards else None
                    new_array = new_position.create_zeros(
                        key,
                        array.shape,
                        array.dtype,
                        chunks=array_chunks,
                        shards_ratio=shards,
                        transform=transforms.get(key),
                    )
                    for t in range(array.shape[0]):
                        new_array[t] = array[t]
                _copy_attributes(position, new_position)
                _logger.info("Rechunked %s to %s", name, chunks)
    _verify(source, target)
    return target


def _verify(source: Path, target: Path) -> None:
    """Raise if any array, channel list or attribute of ``target`` differs from ``source``."""
    with open_ome_zarr(source, layout="hcs", mode="r") as plate, open_ome_zarr(target, layout="hcs", mode="r") as copy:
        if copy.channel_names != plate.channel_names:
            raise RuntimeError(f"Copy '{target}' has channels {copy.channel_names}, source {plate.channel_names}.")
        copied = dict(copy.positions())
        for name, position in plate.positions():
            if name not in copied:
                raise RuntimeError(f"Copy '{target}' lacks position '{name}' of '{source}'.")
            for key in position.array_keys():
                array, new_array = position[key], copied[name][key]
                for t in range(array.shape[0]):
                    if not np.array_equal(array[t], new_array[t]):
                        raise RuntimeError(
                            f"Copy '{target}' differs from '{source}' at position '{name}', array "
                            f"'{key}', t={t}; the copy was left in place for inspection."
                        )
            for key, value in position.zattrs.items():
                if key not in _OME_KEYS and copied[name].zattrs.get(key) != value:
                    raise RuntimeError(f"Copy '{target}' lost attribute '{key}' of position '{name}'.")
