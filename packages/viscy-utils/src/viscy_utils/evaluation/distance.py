"""Distances along cell tracks in embedding space (legacy xarray embedding datasets).

Needs ``pip install 'viscy-utils[eval]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from viscy_utils.evaluation.clustering import pairwise_distance_matrix

if TYPE_CHECKING:
    from xarray import Dataset

__all__ = ["calculate_cosine_similarity_cell", "compute_track_displacement"]


def _track_table(embedding_dataset: Dataset) -> pd.DataFrame:
    """fov_name, track_id and t of every sample, in dataset order."""
    return pd.DataFrame(
        {name: np.asarray(embedding_dataset[name].values) for name in ("fov_name", "track_id", "t")}
    ).assign(fov_name=lambda df: df["fov_name"].astype(str).str.strip("/"))


def calculate_cosine_similarity_cell(
    embedding_dataset: Dataset, fov_name: str, track_id: int
) -> tuple[np.ndarray, list[float]]:
    """Cosine similarity of each timepoint of one track to the track's first timepoint.

    Parameters
    ----------
    embedding_dataset : Dataset
        Dataset with ``features`` and ``fov_name``, ``track_id``, ``t`` coordinates.
    fov_name : str
        FOV of the track (leading "/" ignored).
    track_id : int
        Track identifier.

    Returns
    -------
    tuple[np.ndarray, list[float]]
        Sorted time points and the similarities (clipped to [-1, 1]).

    Raises
    ------
    ValueError
        If the track is not in the dataset.
    """
    table = _track_table(embedding_dataset)
    rows = np.flatnonzero((table["fov_name"] == fov_name.strip("/")) & (table["track_id"] == track_id))
    if rows.size == 0:
        raise ValueError(f"Track {track_id} of FOV {fov_name!r} is not in the embedding dataset.")
    rows = rows[np.argsort(table["t"].to_numpy()[rows], kind="stable")]
    features = np.asarray(embedding_dataset["features"].values)[rows].astype(np.float64)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = np.clip(unit @ unit[0], -1.0, 1.0)
    return table["t"].to_numpy()[rows], similarity.tolist()


def compute_track_displacement(embedding_dataset: Dataset, distance_metric: str = "cosine") -> dict[int, list[float]]:
    """Embedding distances between every pair of timepoints of each track, grouped by time lag.

    Parameters
    ----------
    embedding_dataset : Dataset
        Dataset with ``features`` and ``fov_name``, ``track_id``, ``t`` coordinates.
    distance_metric : str
        ``"cosine"``, ``"euclidean"`` or any scipy ``cdist`` metric.

    Returns
    -------
    dict[int, list[float]]
        ``{tau: distances}`` for every lag ``tau = t_j - t_i > 0`` within a track, in increasing tau.
    """
    table = _track_table(embedding_dataset)
    features = np.asarray(embedding_dataset["features"].values)
    t = table["t"].to_numpy()
    lags, distances = [], []
    for rows in table.groupby(["fov_name", "track_id"], sort=True).indices.values():
        rows = rows[np.argsort(t[rows], kind="stable")]
        if rows.size < 2:
            continue
        block = pairwise_distance_matrix(features[rows], metric=distance_metric, device="cpu")
        i, j = np.triu_indices(rows.size, k=1)
        lags.append(t[rows][j] - t[rows][i])
        distances.append(block[i, j])
    if not lags:
        return {}
    by_lag = pd.Series(np.concatenate(distances)).groupby(np.concatenate(lags), sort=True)
    return {int(tau): values.tolist() for tau, values in by_lag}
