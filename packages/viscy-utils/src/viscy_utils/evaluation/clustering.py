"""Nearest-neighbour accuracy, pairwise distances and clustering scores of embeddings.

Needs ``pip install 'viscy-utils[eval]'`` (scikit-learn, scipy).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from viscy_utils._optional import import_optional

__all__ = [
    "knn_accuracy",
    "pairwise_distance_matrix",
    "rank_nearest_neighbors",
    "select_block",
    "compare_time_offset",
    "dbscan_clustering",
    "clustering_evaluation",
]

_logger = logging.getLogger(__name__)


def knn_accuracy(embeddings: NDArray, annotations: NDArray, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour classifier fitted and scored on the same embeddings.

    Parameters
    ----------
    embeddings : NDArray
        ``(n_samples, n_features)``.
    annotations : NDArray
        ``(n_samples,)`` labels.
    k : int
        Number of neighbours.

    Returns
    -------
    float
        Training accuracy (an optimistic measure of how well labels cluster).
    """
    neighbors = import_optional("sklearn.neighbors")
    classifier = neighbors.KNeighborsClassifier(n_neighbors=k).fit(embeddings, annotations)
    return float(classifier.score(embeddings, annotations))


_TORCH_DEVICES = ("auto", "cpu", "cuda", "gpu")


def _torch_device(device: str) -> torch.device:
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available.")
    return torch.device("cuda")


def pairwise_distance_matrix(
    features: NDArray, metric: str = "cosine", device: Literal["auto", "cpu", "cuda", "gpu", "scipy"] | None = "auto"
) -> NDArray:
    """Pairwise distances between rows, ``(n, n)`` float64.

    Cosine and Euclidean distances are computed with torch on ``device``; other metrics, ``device`` None or
    ``"scipy"``, or a torch failure (no CUDA, out of memory) use ``scipy.spatial.distance.cdist``.

    Parameters
    ----------
    features : NDArray
        ``(n_samples, n_features)``.
    metric : str
        ``"cosine"``, ``"euclidean"`` or any scipy ``cdist`` metric.
    device : {"auto", "cpu", "cuda", "gpu", "scipy"} | None
        Where to compute; ``"auto"`` picks CUDA when available.

    Returns
    -------
    NDArray
        Distance matrix.

    Raises
    ------
    ValueError
        For an unknown device.
    """
    features = np.asarray(features, dtype=np.float64)
    if device not in (None, "scipy", *_TORCH_DEVICES):
        raise ValueError(f"Invalid device: {device!r}. Use one of {[*_TORCH_DEVICES, 'scipy', None]}.")
    if device in _TORCH_DEVICES and metric in ("cosine", "euclidean"):
        try:
            x = torch.from_numpy(features).to(_torch_device(device))
            if metric == "cosine":
                normalized = torch.nn.functional.normalize(x, dim=1)
                distances = 1 - normalized @ normalized.T
            else:
                distances = torch.cdist(x, x, p=2)
            return distances.cpu().numpy()
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            _logger.warning(f"Torch distance computation failed ({error}); falling back to scipy.")
    spatial = import_optional("scipy.spatial.distance")
    return spatial.cdist(features, features, metric=metric)


def rank_nearest_neighbors(cross_dissimilarity: NDArray, normalize: bool = True) -> NDArray:
    """Rank of each column among the row's neighbours (0 = closest, itself for a self-distance matrix).

    Parameters
    ----------
    cross_dissimilarity : NDArray
        ``(n, m)`` dissimilarities.
    normalize : bool
        Divide ranks by ``m - 1`` so they lie in [0, 1].

    Returns
    -------
    NDArray
        Ranks with the shape of the input.
    """
    ranks = np.argsort(np.argsort(cross_dissimilarity, axis=1), axis=1)
    if normalize:
        return ranks / (cross_dissimilarity.shape[1] - 1)
    return ranks


def select_block(distances: NDArray, index: NDArray) -> NDArray:
    """Square sub-matrix of ``distances`` for the rows and columns ``index``."""
    return distances[np.ix_(index, index)]


def compare_time_offset(single_track_distances: NDArray, time_offset: int = 1) -> NDArray:
    """Distances between frames ``time_offset`` apart in a time-ordered track block."""
    return single_track_distances.diagonal(offset=-time_offset)


def dbscan_clustering(embeddings: NDArray, eps: float = 0.5, min_samples: int = 5) -> NDArray:
    """DBSCAN cluster labels (-1 for noise)."""
    cluster = import_optional("sklearn.cluster")
    return cluster.DBSCAN(eps=eps, min_samples=min_samples).fit_predict(embeddings)


def clustering_evaluation(embeddings: NDArray, annotations: NDArray, method: Literal["nmi", "ari"] = "nmi") -> float:
    """Agreement between DBSCAN clusters of the embeddings and the annotations.

    Parameters
    ----------
    embeddings : NDArray
        ``(n_samples, n_features)``.
    annotations : NDArray
        ``(n_samples,)`` labels.
    method : {"nmi", "ari"}
        Normalized mutual information or adjusted Rand index.

    Returns
    -------
    float
        The score.
    """
    metrics = import_optional("sklearn.metrics")
    if method == "nmi":
        score = metrics.normalized_mutual_info_score
    elif method == "ari":
        score = metrics.adjusted_rand_score
    else:
        raise ValueError("Invalid method. Choose 'nmi' or 'ari'.")
    return float(score(annotations, dbscan_clustering(embeddings)))
