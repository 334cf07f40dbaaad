"""Temporal smoothness of embeddings: adjacent-frame versus random-pair distances.

Needs ``pip install 'viscy-utils[anndata,eval]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from viscy_utils._optional import import_optional
from viscy_utils.evaluation.clustering import compare_time_offset, select_block

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["compute_piece_wise_distance", "find_distribution_peak", "compute_embeddings_smoothness"]


def _track_rows(obs: pd.DataFrame, groupby: Sequence[str]) -> list[np.ndarray]:
    """Positional rows of each track (groups of more than one row), ordered by ``t`` when present."""
    groups = obs.reset_index(drop=True).groupby(list(groupby), sort=True).indices.values()
    t = obs["t"].to_numpy() if "t" in obs else None
    tracks = []
    for rows in groups:
        if rows.size > 1:
            tracks.append(rows if t is None else rows[np.argsort(t[rows], kind="stable")])
    return tracks


def compute_piece_wise_distance(
    features_df: pd.DataFrame,
    cross_dist: np.ndarray,
    rank_fractions: np.ndarray,
    groupby: Sequence[str] = ("fov_name", "track_id"),
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Distances and neighbour-rank fractions between consecutive frames of each track.

    Parameters
    ----------
    features_df : pd.DataFrame
        One row per sample, in the row order of ``cross_dist``, with the ``groupby`` columns (and ``t``).
    cross_dist : np.ndarray
        ``(n, n)`` distance matrix.
    rank_fractions : np.ndarray
        ``(n, n)`` normalized neighbour ranks.
    groupby : Sequence[str]
        Columns identifying a track.

    Returns
    -------
    tuple[list[np.ndarray], list[np.ndarray]]
        Per track (with more than one frame): consecutive distances, and consecutive rank fractions.
    """
    dissimilarity, rank_difference = [], []
    for rows in _track_rows(features_df, groupby):
        dissimilarity.append(compare_time_offset(select_block(cross_dist, rows), time_offset=1))
        rank_difference.append(compare_time_offset(select_block(rank_fractions, rows), time_offset=1))
    return dissimilarity, rank_difference


def find_distribution_peak(data: np.ndarray, method: Literal["histogram", "kde_robust"] = "kde_robust") -> float:
    """Location of the main mode of a 1-D distribution.

    Parameters
    ----------
    data : np.ndarray
        Samples.
    method : {"histogram", "kde_robust"}
        50-bin density histogram, or a Gaussian KDE evaluated on 1000 points.

    Returns
    -------
    float
        The highest peak at least 10% of the maximum density (the maximum itself when none is found).
    """
    from scipy.signal import find_peaks
    from scipy.stats import gaussian_kde

    data = np.asarray(data, dtype=np.float64).ravel()
    if method == "histogram":
        density, edges = np.histogram(data, bins=50, density=True)
        positions = (edges[:-1] + edges[1:]) / 2
    elif method == "kde_robust":
        positions = np.linspace(data.min(), data.max(), 1000)
        density = gaussian_kde(data)(positions)
    else:
        raise ValueError(f"Unknown method: {method}. Use 'histogram' or 'kde_robust'.")
    peaks, _ = find_peaks(density, height=0.1 * density.max())
    best = peaks[np.argmax(density[peaks])] if peaks.size else np.argmax(density)
    return float(positions[best])


def _paired_distances(X: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    pairwise = import_optional("sklearn.metrics.pairwise")
    return pairwise.paired_distances(X[a], X[b], metric=metric)


def compute_embeddings_smoothness(
    features_ad: AnnData, distance_metric: str = "cosine", verbose: bool = False
) -> tuple[dict[str, float], dict[str, np.ndarray], list[np.ndarray]]:
    """Compare distances of consecutive frames within tracks to distances of random cell pairs.

    Features are standardized first. Only the needed pairs are computed (no ``n x n`` matrix), so this
    scales to many cells. Random pairs use a generator seeded with 42, as many as adjacent pairs, never a
    cell with itself.

    Parameters
    ----------
    features_ad : AnnData
        Embeddings with ``fov_name``, ``track_id`` and ``t`` in ``obs``.
    distance_metric : str
        ``"cosine"``, ``"euclidean"`` or another ``sklearn`` paired-distance metric.
    verbose : bool
        Print the statistics.

    Returns
    -------
    tuple[dict[str, float], dict[str, np.ndarray], list[np.ndarray]]
        ``stats`` (``adjacent_frame_{mean,std,median,peak}``, ``random_frame_{mean,std,median,peak}``,
        ``smoothness_score`` = adjacent mean / random mean, ``dynamic_range`` = random peak - adjacent peak),
        ``distributions`` (``adjacent_frame_distribution``, ``random_frame_distribution``) and the
        adjacent-frame distances of each track.

    Raises
    ------
    ValueError
        If no track has two or more frames.
    """
    preprocessing = import_optional("sklearn.preprocessing")
    X = preprocessing.StandardScaler().fit_transform(np.asarray(features_ad.X, dtype=np.float64))
    tracks = _track_rows(features_ad.obs, ("fov_name", "track_id"))
    if not tracks:
        raise ValueError("No track with two or more frames to measure smoothness on.")
    starts = np.concatenate([rows[:-1] for rows in tracks])
    ends = np.concatenate([rows[1:] for rows in tracks])
    adjacent = _paired_distances(X, starts, ends, distance_metric)
    piecewise_per_track = np.split(adjacent, np.cumsum([rows.size - 1 for rows in tracks])[:-1])

    rng = np.random.default_rng(42)
    n_cells = X.shape[0]
    first = rng.integers(0, n_cells, size=adjacent.size)
    second = (first + rng.integers(1, n_cells, size=adjacent.size)) % n_cells  # never equal to first
    random_pairs = _paired_distances(X, first, second, distance_metric)

    stats = {}
    for name, values in (("adjacent_frame", adjacent), ("random_frame", random_pairs)):
        stats.update(
            {
                f"{name}_mean": float(values.mean()),
                f"{name}_std": float(values.std()),
                f"{name}_median": float(np.median(values)),
                f"{name}_peak": find_distribution_peak(values),
            }
        )
    stats["smoothness_score"] = stats["adjacent_frame_mean"] / stats["random_frame_mean"]
    stats["dynamic_range"] = stats["random_frame_peak"] - stats["adjacent_frame_peak"]
    if verbose:
        for key, value in stats.items():
            print(f"{key}: {value:.4f}")
    distributions = {"adjacent_frame_distribution": adjacent, "random_frame_distribution": random_pairs}
    return stats, distributions, piecewise_per_track
