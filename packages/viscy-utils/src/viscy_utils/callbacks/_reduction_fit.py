"""Dimensionality reductions fitted on a sample of cells and applied to every cell block by block.

The arguments are those of :mod:`viscy_utils.evaluation.dimensionality_reduction` (``compute_pca``,
``_fit_transform_umap``, ``compute_phate``) with the same defaults and seeds. PCA and UMAP project new cells
with ``transform``; PHATE extends its graph to new cells with ``transform``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np

from viscy_utils._optional import import_optional

_logger = logging.getLogger(__name__)

Transform = Callable[[np.ndarray], np.ndarray]


def bounded_neighbours(kwargs: dict, key: str, default: int, fallback: int, n_samples: int) -> dict:
    """Copy of ``kwargs`` whose neighbour count ``key`` is smaller than ``n_samples``."""
    kwargs = {key: default, **kwargs}
    if kwargs[key] >= n_samples:
        _logger.warning(f"{key}={kwargs[key]} is not smaller than the {n_samples} samples; using {fallback}.")
        kwargs[key] = fallback
    return kwargs


def _scaled(sample: np.ndarray, standardize: bool) -> tuple[np.ndarray, Transform]:
    if not standardize:
        return sample, lambda x: x
    scaler = import_optional("sklearn.preprocessing").StandardScaler().fit(sample)
    return scaler.transform(sample), scaler.transform


def fit_pca(sample: np.ndarray, n_components: int | None = None, normalize_features: bool = True) -> Transform:
    """Standardized, seeded PCA fitted on ``sample``."""
    scaled, scale = _scaled(sample, normalize_features)
    model = import_optional("sklearn.decomposition").PCA(n_components=n_components, random_state=42).fit(scaled)
    return lambda x: model.transform(scale(x))


def fit_umap(sample: np.ndarray, n_components: int = 2, n_neighbors: int = 15, normalize: bool = True) -> Transform:
    """Standardized, seeded UMAP fitted on ``sample``."""
    scaled, scale = _scaled(sample, normalize)
    umap = import_optional("umap")
    model = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, random_state=42).fit(scaled)
    return lambda x: model.transform(scale(x))


def fit_phate(
    sample: np.ndarray,
    scale_embeddings: bool = False,
    n_components: int = 2,
    knn: int = 5,
    decay: int = 40,
    random_state: int = 42,
    **phate_kwargs,
) -> Transform:
    """Seeded PHATE fitted on ``sample``."""
    scaled, scale = _scaled(sample, scale_embeddings)
    phate = import_optional("phate")
    model = phate.PHATE(
        n_components=n_components, knn=knn, decay=decay, random_state=random_state, verbose=0, **phate_kwargs
    ).fit(scaled)

    def transform(x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # PHATE warns on any new data, although it extends its graph to it
            warnings.filterwarnings("ignore", message="Pre-fit PHATE should not be used", category=RuntimeWarning)
            return model.transform(scale(x))

    return transform


def sampled_reductions(
    features,
    max_cells: int,
    umap_kwargs: dict | None,
    phate_kwargs: dict | None,
    pca_kwargs: dict | None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Fit each requested reduction on ``max_cells`` random cells and transform all cells in blocks.

    Parameters
    ----------
    features : zarr.Array
        ``(n_cells, n_features)`` array read by row blocks (its chunks) and by orthogonal row selection.
    max_cells : int
        Number of cells the reductions are fitted on (drawn without replacement with ``seed``).
    umap_kwargs, phate_kwargs, pca_kwargs : dict | None
        Arguments of each reduction (off when None or empty).
    seed : int
        Seed of the sample.

    Returns
    -------
    dict[str, np.ndarray]
        ``X_umap``, ``X_phate`` and ``X_pca`` for the requested reductions; a failing one is skipped
        with a warning.
    """
    n_cells = features.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n_cells, size=max_cells, replace=False))
    sample = np.asarray(features.get_orthogonal_selection((rows, slice(None))))
    fits: list[tuple[str, Callable[[], Transform]]] = []
    if umap_kwargs:
        kwargs = bounded_neighbours(umap_kwargs, "n_neighbors", 15, max(2, min(15, max_cells // 2)), max_cells)
        fits.append(("X_umap", lambda: fit_umap(sample, **kwargs)))
    if phate_kwargs:
        phate_args = bounded_neighbours(phate_kwargs, "knn", 5, max(2, max_cells // 2), max_cells)
        fits.append(("X_phate", lambda: fit_phate(sample, **phate_args)))
    if pca_kwargs:
        fits.append(("X_pca", lambda: fit_pca(sample, **pca_kwargs)))
    embeddings = {}
    step = features.chunks[0]
    for key, fit in fits:
        try:
            transform = fit()
            blocks = [transform(np.asarray(features[start : start + step])) for start in range(0, n_cells, step)]
            embeddings[key] = np.concatenate(blocks)
        except Exception as error:  # a failed reduction must not lose the predicted features
            message = f"{key} computation failed and is not written: {error!r}"
            _logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    _logger.info(f"Reductions {sorted(embeddings)} fitted on {max_cells} of {n_cells} cells.")
    return embeddings
