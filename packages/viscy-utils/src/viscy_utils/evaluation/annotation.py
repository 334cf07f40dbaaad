"""Convert legacy xarray embedding stores to AnnData and join annotation tables onto embeddings.

Needs ``pip install 'viscy-utils[anndata]'``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from viscy_utils._optional import import_optional
from viscy_utils.store import write_anndata_zarr

if TYPE_CHECKING:
    from anndata import AnnData
    from xarray import Dataset

__all__ = ["convert", "load_annotation_anndata"]

_REDUCTIONS = {"PCA": "X_pca", "UMAP": "X_umap", "PHATE": "X_phate"}


def _natural_key(name: str) -> list:
    """Sort key that orders ``PCA2`` before ``PCA10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _sample_coordinate(dataset: Dataset, name: str) -> np.ndarray:
    return np.asarray(dataset.coords[name].values)


def convert(
    embeddings_ds: Dataset | Path,
    output_path: Path,
    overwrite: bool = False,
    return_anndata: bool = False,
) -> AnnData | None:
    """Convert a legacy xarray embedding dataset to an AnnData zarr store.

    ``X`` comes from the ``features`` variable; ``obs`` from the available index coordinates (``fov_name``
    without "/"); ``obsm["X_projections"]`` from a ``projections`` coordinate or variable; ``obsm["X_pca"]``,
    ``["X_umap"]`` and ``["X_phate"]`` from the coordinates whose names contain ``PCA``, ``UMAP`` or ``PHATE``
    (in natural order, e.g. ``PCA1, PCA2, ..., PCA10``).

    Parameters
    ----------
    embeddings_ds : Dataset | Path
        The dataset, or the path of its zarr store.
    output_path : Path
        AnnData zarr store to write.
    overwrite : bool
        Replace an existing store (only once the new one is complete).
    return_anndata : bool
        Return the AnnData object.

    Returns
    -------
    AnnData | None
        The converted object when ``return_anndata``.

    Raises
    ------
    FileExistsError
        If ``output_path`` exists and ``overwrite`` is false.
    ValueError
        If the dataset has no ``features`` variable.
    """
    from viscy_utils.legacy_embeddings import get_available_index_columns

    ad = import_optional("anndata")
    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise FileExistsError(f"Output path {output_path} already exists.")
    source = str(embeddings_ds) if isinstance(embeddings_ds, (str, Path)) else None
    if source is not None:
        embeddings_ds = import_optional("xarray").open_zarr(embeddings_ds)
    if "features" not in embeddings_ds:
        raise ValueError(f"Embedding dataset {source or '(in memory)'} has no 'features' variable.")
    if isinstance(embeddings_ds.indexes.get("sample"), pd.MultiIndex):
        embeddings_ds = embeddings_ds.reset_index("sample")
    index_columns = get_available_index_columns(embeddings_ds, source)
    obs = pd.DataFrame({name: _sample_coordinate(embeddings_ds, name) for name in index_columns})
    if "fov_name" in obs:
        obs["fov_name"] = obs["fov_name"].astype(str).str.strip("/")
    obs.index = pd.RangeIndex(len(obs)).astype(str)
    adata = ad.AnnData(X=np.asarray(embeddings_ds["features"].values), obs=obs)
    if "projections" in embeddings_ds.variables:
        adata.obsm["X_projections"] = np.asarray(embeddings_ds["projections"].values)
    for marker, key in _REDUCTIONS.items():
        names = sorted((str(name) for name in embeddings_ds.coords if marker in str(name)), key=_natural_key)
        if names:
            adata.obsm[key] = np.column_stack([_sample_coordinate(embeddings_ds, name) for name in names])
    write_anndata_zarr(adata, output_path, overwrite)
    return adata if return_anndata else None


def load_annotation_anndata(adata: AnnData, path: str, name: str, categories: dict | None = None) -> AnnData:
    """Add one annotation column of a CSV to ``adata.obs``, matching rows on ``(fov_name, id)``.

    Cells without an annotation get NaN. ``adata`` is modified in place.

    Parameters
    ----------
    adata : AnnData
        Embeddings with ``fov_name`` and ``id`` in ``obs``.
    path : str
        Annotation CSV with ``fov_name``, ``id`` and the ``name`` column.
    name : str
        Column to add, e.g. ``"infection_state"``.
    categories : dict | None
        Optional renaming of the values (the column becomes categorical).

    Returns
    -------
    AnnData
        ``adata`` with ``obs[name]``.

    Raises
    ------
    ValueError
        If the CSV or ``adata.obs`` lacks a needed column.
    """
    annotations = pd.read_csv(path)
    missing = [column for column in ("fov_name", "id", name) if column not in annotations]
    if missing:
        raise ValueError(
            f"Annotation file {path} has no column(s) {missing}; available columns: {list(annotations.columns)}."
        )
    missing_obs = [column for column in ("fov_name", "id") if column not in adata.obs]
    if missing_obs:
        raise ValueError(f"Embeddings obs has no column(s) {missing_obs} to match annotations from {path}.")
    annotations["fov_name"] = annotations["fov_name"].astype(str).str.strip("/")
    annotations = annotations.drop_duplicates(["fov_name", "id"]).set_index(["fov_name", "id"])
    keys = pd.MultiIndex.from_arrays(
        [adata.obs["fov_name"].astype(str).str.strip("/").to_numpy(), adata.obs["id"].to_numpy()]
    )
    values = annotations[name].reindex(keys)
    if categories is not None:
        values = values.astype("category").cat.rename_categories(categories)
    adata.obs[name] = values.set_axis(adata.obs.index)
    return adata
