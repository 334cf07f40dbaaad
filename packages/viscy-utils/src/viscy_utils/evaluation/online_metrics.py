"""Embedding-quality metrics cheap enough to run during training (see ``OnlineEvalCallback``).

- :func:`effective_rank`: RankMe, the collapse detector (near 1 for a collapsed embedding).
- :func:`temporal_smoothness`: how embedding distance follows time along tracks.
- :func:`fov_split`, :func:`weighted_knn_accuracy`, :func:`linear_probe_accuracy`: label read-outs
  scored on held-out FOVs.

All functions are vectorised over cells (no Python loop over rows). The probe needs scikit-learn and
the Spearman correlation scipy (``pip install 'viscy-utils[eval]'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray

from viscy_utils._optional import import_optional

__all__ = [
    "TemporalSmoothness",
    "effective_rank",
    "fov_split",
    "linear_probe_accuracy",
    "temporal_smoothness",
    "weighted_knn_accuracy",
]

_KNN_CHUNK = 4096


def effective_rank(features: ArrayLike | torch.Tensor, eps: float = 1e-12) -> float:
    """RankMe effective rank: exp of the entropy of the normalised singular values.

    Parameters
    ----------
    features : array-like or Tensor
        ``(n_samples, n_features)`` embedding matrix (not centred, as in RankMe).
    eps : float
        Added to the normalised singular values before the logarithm.

    Returns
    -------
    float
        Between 1 (every sample on one direction: collapse) and ``min(n_samples, n_features)``.

    Raises
    ------
    ValueError
        If ``features`` is not a non-empty 2-D matrix.
    """
    matrix = torch.as_tensor(features).detach().to(torch.float64)
    if matrix.ndim != 2 or matrix.numel() == 0:
        raise ValueError(
            f"effective_rank expects a non-empty (n_samples, n_features) matrix, got {tuple(matrix.shape)}"
        )
    singular = torch.linalg.svdvals(matrix)
    total = singular.sum()
    if total <= 0:
        return 1.0
    p = singular / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


@dataclass(frozen=True)
class TemporalSmoothness:
    """Result of :func:`temporal_smoothness`.

    Attributes
    ----------
    spearman : float
        Spearman correlation between cosine distance and time distance of sampled within-track pairs
        (high: embeddings drift along tracks; ~0: no temporal structure). NaN without such pairs.
    adjacent_to_random_ratio : float
        Mean cosine distance of consecutive observations of a track over that of random pairs
        (below 1: neighbouring frames are closer than random cells). NaN without such pairs.
    n_pairs : int
        Number of within-track pairs used for ``spearman``.
    """

    spearman: float
    adjacent_to_random_ratio: float
    n_pairs: int


def _cosine_distance(features: torch.Tensor, rows_a: NDArray, rows_b: NDArray) -> NDArray:
    a = features[torch.from_numpy(rows_a)]
    b = features[torch.from_numpy(rows_b)]
    return (1.0 - F.cosine_similarity(a, b, dim=1)).numpy()


def temporal_smoothness(
    features: ArrayLike | torch.Tensor,
    track_ids: ArrayLike,
    times: ArrayLike,
    n_pairs: int = 10000,
    seed: int = 0,
) -> TemporalSmoothness:
    """Smoothness of embeddings along tracks, from seeded samples of observation pairs.

    Parameters
    ----------
    features : array-like or Tensor
        ``(n_samples, n_features)`` embeddings.
    track_ids : array-like
        ``(n_samples,)`` track identity of each row (any hashable values, unique over FOVs).
    times : array-like
        ``(n_samples,)`` time of each row (frames or hours).
    n_pairs : int
        Number of within-track pairs (and of random pairs) to sample.
    seed : int
        Seed of the pair sampling.

    Returns
    -------
    TemporalSmoothness
    """
    stats = import_optional("scipy.stats")
    embeddings = torch.as_tensor(features).detach().float().cpu()
    times = np.asarray(times, dtype=float)
    codes = pd.factorize(pd.Series(np.asarray(track_ids)))[0]
    order = np.lexsort((times, codes))
    codes_sorted, times_sorted = codes[order], times[order]
    boundaries = np.flatnonzero(np.diff(codes_sorted)) + 1
    starts = np.concatenate([[0], boundaries])
    sizes = np.diff(np.concatenate([starts, [len(order)]]))
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(np.repeat(sizes >= 2, sizes))
    if len(eligible) == 0:
        return TemporalSmoothness(float("nan"), float("nan"), 0)
    # within-track pairs: a random row of a track with >= 2 rows, and a different random row of that track
    first = rng.choice(eligible, size=n_pairs)
    group = np.repeat(np.arange(len(sizes)), sizes)[first]
    position = first - starts[group]
    other = rng.integers(0, sizes[group] - 1)
    other = starts[group] + other + (other >= position)
    distance = _cosine_distance(embeddings, order[first], order[other])
    time_gap = np.abs(times_sorted[first] - times_sorted[other])
    spearman = float(stats.spearmanr(distance, time_gap).statistic) if np.ptp(time_gap) > 0 else float("nan")
    # consecutive observations of a track vs random pairs of distinct rows
    consecutive = np.flatnonzero(codes_sorted[1:] == codes_sorted[:-1])
    adjacent = _cosine_distance(embeddings, order[consecutive], order[consecutive + 1]).mean()
    rows_a = rng.integers(0, len(order), size=n_pairs)
    rows_b = (rows_a + rng.integers(1, len(order), size=n_pairs)) % len(order)
    random = _cosine_distance(embeddings, rows_a, rows_b).mean()
    ratio = float(adjacent / random) if random > 0 else float("nan")
    return TemporalSmoothness(spearman, ratio, n_pairs)


def fov_split(fov_names: ArrayLike, test_fraction: float = 0.3, seed: int = 0) -> NDArray[np.bool_]:
    """Held-out mask that splits by FOV, never by cell: a FOV (and so each track) is on one side only.

    Parameters
    ----------
    fov_names : array-like
        ``(n_samples,)`` FOV of each row.
    test_fraction : float
        Fraction of the FOVs held out (at least one FOV on each side).
    seed : int
        Seed of the FOV permutation.

    Returns
    -------
    NDArray[bool]
        True for the rows of held-out FOVs.

    Raises
    ------
    ValueError
        If there are fewer than 2 FOVs.
    """
    codes, fovs = pd.factorize(pd.Series(np.asarray(fov_names)), sort=True)
    if len(fovs) < 2:
        raise ValueError(f"A split by FOV needs at least 2 FOVs, got {list(fovs)}.")
    n_test = min(max(1, round(test_fraction * len(fovs))), len(fovs) - 1)
    held_out = np.random.default_rng(seed).permutation(len(fovs))[:n_test]
    return np.isin(codes, held_out)


def weighted_knn_accuracy(
    train_features: ArrayLike | torch.Tensor,
    train_labels: ArrayLike,
    test_features: ArrayLike | torch.Tensor,
    test_labels: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Accuracy of a cosine-similarity k-NN classifier with ``exp(similarity / temperature)`` votes.

    The weighted k-NN of instance discrimination (Wu et al. 2018), as used by solo-learn and DINO.

    Parameters
    ----------
    train_features, test_features : array-like or Tensor
        ``(n_train, n_features)`` and ``(n_test, n_features)`` embeddings.
    train_labels, test_labels : array-like
        Labels of the rows (any hashable values).
    k : int
        Neighbours per test row (capped at ``n_train``).
    temperature : float
        Temperature of the vote weights.

    Returns
    -------
    float
        Fraction of test rows whose weighted vote is their label.
    """
    codes, classes = pd.factorize(pd.Series(np.concatenate([np.asarray(train_labels), np.asarray(test_labels)])))
    n_train = len(train_labels)
    train_codes = torch.from_numpy(codes[:n_train])
    test_codes = torch.from_numpy(codes[n_train:])
    bank = F.normalize(torch.as_tensor(train_features).detach().float().cpu(), dim=1)
    queries = F.normalize(torch.as_tensor(test_features).detach().float().cpu(), dim=1)
    k = min(k, n_train)
    correct = 0
    for start in range(0, len(queries), _KNN_CHUNK):
        similarity = queries[start : start + _KNN_CHUNK] @ bank.T
        top_similarity, top_rows = similarity.topk(k, dim=1)
        votes = torch.zeros(len(top_rows), len(classes))
        votes.scatter_add_(1, train_codes[top_rows], (top_similarity / temperature).exp())
        correct += int((votes.argmax(dim=1) == test_codes[start : start + _KNN_CHUNK]).sum())
    return correct / len(queries)


def linear_probe_accuracy(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    max_iter: int = 1000,
) -> float:
    """Test accuracy of a logistic regression fitted on standardised training features.

    Parameters
    ----------
    train_features, test_features : array-like
        ``(n_train, n_features)`` and ``(n_test, n_features)`` embeddings.
    train_labels, test_labels : array-like
        Labels of the rows.
    max_iter : int
        Iterations of the solver.

    Returns
    -------
    float
        Accuracy on the test rows.
    """
    linear_model = import_optional("sklearn.linear_model")
    pipeline = import_optional("sklearn.pipeline")
    preprocessing = import_optional("sklearn.preprocessing")
    probe = pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(max_iter=max_iter))
    probe.fit(np.asarray(train_features), np.asarray(train_labels))
    return float(probe.score(np.asarray(test_features), np.asarray(test_labels)))
