"""Small real OME-Zarr HCS plates and tracks tables for tests and examples.

Everything written here goes through iohub, so readers are exercised against the real on-disk
format: row/col/fov positions, array ``"0"`` in TCZYX order, OMERO channel names, and
``.zattrs["normalization"]`` statistics in the layout the ``preprocess`` command writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from iohub.ngff import open_ome_zarr

from viscy_data.normalization import write_norm_meta

__all__ = ["channel_statistics", "write_hcs_plate", "write_tracks", "random_walk_tracks"]

TRACKS_COLUMNS = ["track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]


def channel_statistics(values: np.ndarray) -> dict[str, float]:
    """Summary statistics of one channel, with the keys of the ``normalization`` metadata.

    Parameters
    ----------
    values : np.ndarray
        Intensities of one channel (any shape).

    Returns
    -------
    dict[str, float]
        ``mean``, ``std``, ``median``, ``iqr``, ``p1``, ``p5``, ``p95``, ``p99``, ``p95_p5``, ``p99_p1``.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    p1, p5, p25, p50, p75, p95, p99 = np.percentile(flat, [1, 5, 25, 50, 75, 95, 99])
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "median": float(p50),
        "iqr": float(p75 - p25),
        "p1": float(p1),
        "p5": float(p5),
        "p95": float(p95),
        "p99": float(p99),
        "p95_p5": float(p95 - p5),
        "p99_p1": float(p99 - p1),
    }


def write_hcs_plate(
    path: str | Path,
    positions: Sequence[str] = ("A/1/0", "A/1/1"),
    channel_names: Sequence[str] = ("Phase3D", "GFP"),
    shape: tuple[int, int, int, int] = (3, 1, 32, 32),
    dtype: np.dtype | str = np.float32,
    normalization: bool = True,
    version: Literal["0.4", "0.5"] = "0.4",
    seed: int = 0,
    data: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Write a small HCS plate with random (or given) images.

    Parameters
    ----------
    path : str | Path
        Store to create (must not exist).
    positions : Sequence[str]
        Position names ``"row/col/fov"``.
    channel_names : Sequence[str]
        Channel names written to the OMERO metadata.
    shape : tuple[int, int, int, int]
        ``(T, Z, Y, X)`` of every position's array ``"0"``.
    dtype : np.dtype | str
        Array dtype.
    normalization : bool
        Write ``.zattrs["normalization"]`` to the plate and each position, with
        ``dataset_statistics``, ``fov_statistics`` and ``timepoint_statistics`` levels.
    version : {"0.4", "0.5"}
        OME-NGFF version: ``"0.4"`` writes Zarr v2, ``"0.5"`` writes Zarr v3.
    seed : int
        Seed of the random images (ignored for positions given in ``data``).
    data : dict[str, np.ndarray] | None
        Optional ``(T, C, Z, Y, X)`` arrays per position name, written instead of random images.

    Returns
    -------
    dict[str, np.ndarray]
        The ``(T, C, Z, Y, X)`` array written to each position.
    """
    rng = np.random.default_rng(seed)
    channel_names = list(channel_names)
    n_t, n_z, n_y, n_x = shape
    written: dict[str, np.ndarray] = {}
    for name in positions:
        if data is not None and name in data:
            image = np.asarray(data[name], dtype=dtype)
        else:
            scale = np.arange(1, len(channel_names) + 1, dtype=np.float64)[None, :, None, None, None]
            image = (rng.normal(size=(n_t, len(channel_names), n_z, n_y, n_x)) * scale + 10 * scale).astype(dtype)
        written[name] = image
    with open_ome_zarr(path, layout="hcs", mode="w-", channel_names=channel_names, version=version) as plate:
        for name, image in written.items():
            row, col, fov = name.split("/")
            position = plate.create_position(row, col, fov)
            position.create_image("0", image, chunks=(1, 1, *image.shape[2:]))
        if normalization:
            _write_normalization(plate, written, channel_names)
    return written


def _write_normalization(plate, written: dict[str, np.ndarray], channel_names: list[str]) -> None:
    """Store exact statistics in the plate's and each position's ``.zattrs["normalization"]``."""
    stacked = np.stack(list(written.values()))  # (P, T, C, Z, Y, X)
    positions = dict(plate.positions())
    for c, channel in enumerate(channel_names):
        dataset_stats = channel_statistics(stacked[:, :, c])
        timepoint_stats = {str(t): channel_statistics(stacked[:, t, c]) for t in range(stacked.shape[1])}
        write_norm_meta(plate, channel, {"dataset_statistics": dataset_stats, "timepoint_statistics": timepoint_stats})
        for name, image in written.items():
            levels = {
                "dataset_statistics": dataset_stats,
                "fov_statistics": channel_statistics(image[:, c]),
                "timepoint_statistics": timepoint_stats,
            }
            write_norm_meta(positions[name], channel, levels)


def random_walk_tracks(
    n_tracks: int,
    n_timepoints: int,
    image_yx: tuple[int, int],
    margin: int = 0,
    seed: int = 0,
    step: float = 1.0,
) -> pd.DataFrame:
    """A tracks table of cells doing bounded random walks, one row per (track, timepoint).

    Parameters
    ----------
    n_tracks : int
        Number of tracks, each present at every timepoint.
    n_timepoints : int
        Number of timepoints.
    image_yx : tuple[int, int]
        Image size; centroids stay inside ``[margin, size - 1 - margin]``.
    margin : int
        Distance kept from the image border.
    seed : int
        Random seed.
    step : float
        Standard deviation of a step in pixels.

    Returns
    -------
    pd.DataFrame
        Columns ``track_id, t, id, parent_track_id, parent_id, z, y, x`` (integers;
        ``parent_track_id`` and ``parent_id`` are ``-1``).
    """
    rng = np.random.default_rng(seed)
    lo = np.array([margin, margin])
    hi = np.array(image_yx) - 1 - margin
    start = rng.uniform(lo, hi, size=(n_tracks, 2))
    walk = np.cumsum(rng.normal(scale=step, size=(n_tracks, n_timepoints, 2)), axis=1)
    walk[:, 0] = 0
    yx = np.clip(np.rint(start[:, None, :] + walk), lo, hi).astype(int)
    track_id = np.repeat(np.arange(n_tracks), n_timepoints)
    t = np.tile(np.arange(n_timepoints), n_tracks)
    return pd.DataFrame(
        {
            "track_id": track_id,
            "t": t,
            "id": np.arange(track_id.size),
            "parent_track_id": -1,
            "parent_id": -1,
            "z": 0,
            "y": yx[..., 0].ravel(),
            "x": yx[..., 1].ravel(),
        }
    )


def write_tracks(tracks_root: str | Path, fov_name: str, tracks: pd.DataFrame) -> Path:
    """Write one FOV's tracks table to ``<tracks_root>/<fov_name>/tracks.csv``.

    Parameters
    ----------
    tracks_root : str | Path
        Root folder of the per-FOV tracks tables.
    fov_name : str
        Position name ``"row/col/fov"``.
    tracks : pd.DataFrame
        Table with at least ``track_id, t, y, x``.

    Returns
    -------
    Path
        The CSV written.
    """
    folder = Path(tracks_root) / fov_name.strip("/")
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "tracks.csv"
    tracks.to_csv(csv_path, index=False)
    return csv_path
