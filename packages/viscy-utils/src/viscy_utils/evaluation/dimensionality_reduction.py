"""Dimensionality reduction of embeddings: PCA, UMAP and PHATE.

scikit-learn, umap-learn and phate come with ``pip install 'viscy-utils[eval]'`` and are imported when used.
Inputs may be an array ``(n_samples, n_features)`` or a legacy xarray embedding Dataset with a ``features``
variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from viscy_utils._optional import import_optional

if TYPE_CHECKING:
    from xarray import Dataset

__all__ = ["compute_pca", "compute_phate", "compute_umap"]

_DATASET_ID_COLUMNS = ["id", "fov_name", "t", "track_id"]


def _is_dataset(embedding_dataset: Any) -> bool:
    return hasattr(embedding_dataset, "data_vars") and "features" in embedding_dataset


def _features_array(embedding_dataset: Any) -> np.ndarray:
    if _is_dataset(embedding_dataset):
        return np.asarray(embedding_dataset["features"].values)
    return np.asarray(embedding_dataset)


def _standardize(features: np.ndarray) -> np.ndarray:
    return import_optional("sklearn.preprocessing").StandardScaler().fit_transform(features)


def _id_columns(embedding_dataset: Any) -> pd.DataFrame:
    """Sample identifiers of a legacy Dataset (empty frame for arrays)."""
    if not _is_dataset(embedding_dataset):
        return pd.DataFrame()
    coords = embedding_dataset["features"].coords
    return pd.DataFrame({name: np.asarray(coords[name].values) for name in _DATASET_ID_COLUMNS if name in coords})


def compute_phate(
    embedding_dataset: Dataset | np.ndarray,
    scale_embeddings: bool = False,
    n_components: int = 2,
    knn: int = 5,
    decay: int = 40,
    update_dataset: bool = False,
    random_state: int = 42,
    **phate_kwargs: Any,
) -> tuple[Any, np.ndarray]:
    """Embed features with PHATE.

    Parameters
    ----------
    embedding_dataset : Dataset | np.ndarray
        Features ``(n_samples, n_features)`` or a Dataset with a ``features`` variable.
    scale_embeddings : bool
        Standardize features before PHATE.
    n_components : int
        Output dimensions.
    knn : int
        Number of nearest neighbours.
    decay : int
        Alpha decay of the kernel.
    update_dataset : bool
        For a Dataset input, store the first two components as ``PHATE1`` / ``PHATE2`` coordinates.
    random_state : int
        Seed.
    **phate_kwargs
        Passed to ``phate.PHATE``.

    Returns
    -------
    tuple[phate.PHATE, np.ndarray]
        The fitted model and the ``(n_samples, n_components)`` embedding.
    """
    phate = import_optional("phate", owner="compute_phate")
    features = _features_array(embedding_dataset)
    if scale_embeddings:
        features = _standardize(features)
    model = phate.PHATE(
        n_components=n_components, knn=knn, decay=decay, random_state=random_state, verbose=0, **phate_kwargs
    )
    embedding = model.fit_transform(features)
    if update_dataset and _is_dataset(embedding_dataset):
        sample_dim = embedding_dataset["features"].dims[0]
        for i in range(min(2, n_components)):
            embedding_dataset.coords[f"PHATE{i + 1}"] = (sample_dim, embedding[:, i])
    return model, embedding


def compute_pca(
    embedding_dataset: Dataset | np.ndarray, n_components: int | None = None, normalize_features: bool = True
) -> tuple[np.ndarray, pd.DataFrame]:
    """Project features onto their principal components.

    Parameters
    ----------
    embedding_dataset : Dataset | np.ndarray
        Features ``(n_samples, n_features)`` or a Dataset with a ``features`` variable.
    n_components : int | None
        Number of components (all when None).
    normalize_features : bool
        Standardize features before PCA.

    Returns
    -------
    tuple[np.ndarray, pd.DataFrame]
        The ``(n_samples, n_components)`` projection, and a frame with ``PC1..PCn`` (preceded by
        ``id, fov_name, t, track_id`` for a Dataset input).
    """
    decomposition = import_optional("sklearn.decomposition")
    features = _features_array(embedding_dataset)
    if normalize_features:
        features = _standardize(features)
    projection = decomposition.PCA(n_components=n_components, random_state=42).fit_transform(features)
    pcs = pd.DataFrame(projection, columns=[f"PC{i + 1}" for i in range(projection.shape[1])])
    return projection, pd.concat([_id_columns(embedding_dataset), pcs], axis=1)


def _fit_transform_umap(
    embeddings: np.ndarray, n_components: int = 2, n_neighbors: int = 15, normalize: bool = True
) -> tuple[Any, np.ndarray]:
    """Fit a seeded UMAP and return ``(model, embedding)``."""
    umap = import_optional("umap")
    if normalize:
        embeddings = _standardize(embeddings)
    model = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, random_state=42)
    return model, model.fit_transform(embeddings)


def compute_umap(
    embedding_dataset: Dataset, normalize_features: bool = True
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """2-D UMAP of the features and of the projections of a legacy embedding Dataset.

    Parameters
    ----------
    embedding_dataset : Dataset
        Dataset with a ``features`` variable and a ``projections`` variable or coordinate.
    normalize_features : bool
        Standardize inputs before UMAP.

    Returns
    -------
    tuple[np.ndarray, np.ndarray, pd.DataFrame]
        Feature UMAP, projection UMAP, and a frame with ``id, track_id, t, fov_name, UMAP1, UMAP2,
        UMAP1_proj, UMAP2_proj``.
    """
    if "projections" not in embedding_dataset.variables:
        raise ValueError("compute_umap needs a 'projections' variable in the embedding dataset.")
    _, umap_features = _fit_transform_umap(_features_array(embedding_dataset), normalize=normalize_features)
    projections = np.asarray(embedding_dataset["projections"].values)
    _, umap_projections = _fit_transform_umap(projections, normalize=normalize_features)
    frame = _id_columns(embedding_dataset)
    frame = frame[[c for c in ["id", "track_id", "t", "fov_name"] if c in frame]].assign(
        UMAP1=umap_features[:, 0],
        UMAP2=umap_features[:, 1],
        UMAP1_proj=umap_projections[:, 0],
        UMAP2_proj=umap_projections[:, 1],
    )
    return umap_features, umap_projections, frame
