"""Normalization metadata of HCS OME-Zarr plates.

:func:`generate_normalization_metadata` samples every position on a regular YX grid and stores, per
channel, ``.zattrs["normalization"][channel]`` as

- plate: ``{"dataset_statistics": stats, "timepoint_statistics": {"0": stats, ...}}``
- each position: ``{"dataset_statistics": stats, "fov_statistics": stats, "timepoint_statistics": {...}}``

where ``stats`` has the keys of :func:`viscy_utils.mp_utils.get_val_stats`. The layout and its writer
are owned by :mod:`viscy_data.normalization`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from viscy_data.normalization import write_norm_meta
from viscy_utils.mp_utils import get_row_stats, get_val_stats

__all__ = ["write_meta_field", "generate_normalization_metadata"]

_logger = logging.getLogger(__name__)


def write_meta_field(position: Any, metadata: dict, field_name: str, subfield_name: str) -> None:
    """Merge ``metadata`` into ``position.zattrs[field_name][subfield_name]``.

    Existing keys of the subfield are kept unless ``metadata`` has them, other subfields are kept,
    and the top-level attribute is written back as a whole so that the store persists it.

    Parameters
    ----------
    position : iohub Position or Plate
        Node with ``zattrs``.
    metadata : dict
        Values to merge.
    field_name : str
        Top-level attribute, e.g. ``"normalization"``.
    subfield_name : str
        Key inside it, e.g. a channel name.
    """
    field = dict(position.zattrs.get(field_name, {}))
    field[subfield_name] = {**field.get(subfield_name, {}), **metadata}
    position.zattrs[field_name] = field


def _open_tensorstore(position: Any, num_workers: int) -> Any:
    import tensorstore as ts

    context = ts.Context({"data_copy_concurrency": {"limit": max(1, num_workers)}})
    return position["0"].tensorstore(context=context)


def _grid_sample(position: Any, grid_spacing: int, channel_index: int, num_workers: int) -> np.ndarray:
    """Values of one channel on the YX grid of every ``grid_spacing``-th pixel, all T and Z: ``(T, Z, y, x)``."""
    store = _open_tensorstore(position, num_workers)
    return np.asarray(store[:, channel_index, :, ::grid_spacing, ::grid_spacing].read().result())


def _grid_sample_timepoint(
    position: Any, grid_spacing: int, channel_index: int, timepoint_index: int, num_workers: int
) -> np.ndarray:
    """Grid samples of one channel at one timepoint: ``(Z, y, x)``."""
    store = _open_tensorstore(position, num_workers)
    return np.asarray(store[timepoint_index, channel_index, :, ::grid_spacing, ::grid_spacing].read().result())


def _check_channel_ids(channel_ids: int | list[int], channel_names: list[str], zarr_dir: Path) -> list[int]:
    if channel_ids == -1:
        return list(range(len(channel_names)))
    channel_ids = [channel_ids] if isinstance(channel_ids, int) else list(channel_ids)
    invalid = [c for c in channel_ids if not 0 <= c < len(channel_names)]
    if invalid:
        raise ValueError(
            f"Channel indices {invalid} are out of range for {zarr_dir} with channels {channel_names} "
            f"(expected 0..{len(channel_names) - 1}, or -1 for all)."
        )
    return channel_ids


def _position_statistics(samples: list[np.ndarray]) -> list[dict[str, float]]:
    """Statistics of each position's samples, vectorised when they all have the same size."""
    if len({sample.size for sample in samples}) == 1:
        return get_row_stats(np.stack([sample.ravel() for sample in samples]))
    return [get_val_stats(sample) for sample in samples]


def _timepoint_statistics(samples: list[np.ndarray], n_timepoints: int) -> dict[str, dict[str, float]]:
    """Statistics per timepoint over all positions' samples (each ``(T, Z, y, x)``)."""
    if all(sample.shape[0] == n_timepoints for sample in samples):
        per_timepoint = np.concatenate([sample.reshape(n_timepoints, -1) for sample in samples], axis=1)
        return {str(t): stats for t, stats in enumerate(get_row_stats(per_timepoint))}
    return {
        str(t): get_val_stats(np.concatenate([sample[t].ravel() for sample in samples if t < sample.shape[0]]))
        for t in range(n_timepoints)
    }


def generate_normalization_metadata(
    zarr_dir: str | Path, num_workers: int = 4, channel_ids: int | list[int] = -1, grid_spacing: int = 32
) -> None:
    """Compute normalization statistics of an HCS plate and store them in its ``.zattrs``.

    Positions are read in parallel (``num_workers`` threads), each on a grid of every
    ``grid_spacing``-th pixel in Y and X, over all timepoints and Z slices.

    Parameters
    ----------
    zarr_dir : str | Path
        HCS OME-Zarr plate, opened for writing.
    num_workers : int
        Number of positions read concurrently.
    channel_ids : int | list[int]
        Channel indices, or -1 for all channels.
    grid_spacing : int
        Step of the sampling grid in pixels.

    Raises
    ------
    ValueError
        If a channel index is out of range or ``grid_spacing`` is not positive.
    """
    from iohub.ngff import open_ome_zarr

    if grid_spacing < 1:
        raise ValueError(f"grid_spacing must be a positive number of pixels, got {grid_spacing}.")
    zarr_dir = Path(zarr_dir)
    with open_ome_zarr(zarr_dir, layout="hcs", mode="r+") as plate:
        channel_names = list(plate.channel_names)
        channel_ids = _check_channel_ids(channel_ids, channel_names, zarr_dir)
        positions = [position for _, position in plate.positions()]
        if not positions:
            raise ValueError(f"No positions found in {zarr_dir}.")
        n_timepoints = positions[0]["0"].shape[0]
        _logger.info(f"Detected {n_timepoints} timepoints in dataset {zarr_dir}")
        with ThreadPoolExecutor(max(1, num_workers)) as executor:
            for k, channel_index in enumerate(channel_ids):
                channel_name = channel_names[channel_index]
                _logger.info(f"Sampling channel {channel_name!r} (index {channel_index}, {k + 1}/{len(channel_ids)})")
                samples = list(
                    tqdm(
                        executor.map(
                            _grid_sample, positions, repeat(grid_spacing), repeat(channel_index), repeat(num_workers)
                        ),
                        total=len(positions),
                        desc=f"Positions ({channel_name})",
                    )
                )
                fov_statistics = _position_statistics(samples)
                dataset_statistics = get_val_stats(np.concatenate([sample.ravel() for sample in samples]))
                timepoint_statistics = _timepoint_statistics(samples, n_timepoints)
                plate_meta = {"dataset_statistics": dataset_statistics, "timepoint_statistics": timepoint_statistics}
                write_norm_meta(plate, channel_name, plate_meta)
                for position, fov_stats in zip(positions, fov_statistics, strict=True):
                    position_meta = {
                        "dataset_statistics": dataset_statistics,
                        "fov_statistics": fov_stats,
                        "timepoint_statistics": timepoint_statistics,
                    }
                    write_norm_meta(position, channel_name, position_meta)
