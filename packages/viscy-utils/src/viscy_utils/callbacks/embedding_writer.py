"""Write predicted embeddings to an AnnData zarr store, and read legacy xarray embedding stores.

The AnnData store has ``X`` = features ``(n_cells, n_features)``, ``obs`` = the tracking index columns
(``fov_name`` without leading/trailing "/", ``track_id``, ``t``, ``id``, ...) with unique obs names
``"0".."n-1"``, and ``obsm`` keys among ``X_projections``, ``X_pca``, ``X_umap`` and ``X_phate``.
anndata comes with ``pip install 'viscy-utils[anndata]'``; the reductions need ``viscy-utils[eval]``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from viscy_data._typing import INDEX_COLUMNS
from viscy_utils._optional import import_optional
from viscy_utils._store import write_anndata_zarr
from viscy_utils.callbacks._gather import (
    EmbeddingBatch,
    assemble_table,
    batches_from_epoch,
    broadcast_from_rank_zero,
    gather_to_rank_zero,
    merge_tables,
)

if TYPE_CHECKING:
    from xarray import Dataset

__all__ = ["read_embedding_dataset", "EmbeddingWriter", "write_embedding_dataset", "get_available_index_columns"]

_logger = logging.getLogger("lightning.pytorch")


def get_available_index_columns(dataset: Dataset, dataset_path: str | None = None) -> list[str]:
    """Index columns (in ``INDEX_COLUMNS`` order) present in a legacy embedding Dataset's coordinates.

    Parameters
    ----------
    dataset : Dataset
        Legacy xarray embedding dataset.
    dataset_path : str | None
        Path used in the warning about missing columns.

    Returns
    -------
    list[str]
        The available index columns.
    """
    available = [column for column in INDEX_COLUMNS if column in dataset.coords]
    missing = sorted(set(INDEX_COLUMNS) - set(available))
    if missing:
        where = f" at {dataset_path}" if dataset_path else ""
        _logger.warning(
            f"Dataset{where} is missing index columns: {missing}. This appears to be a legacy dataset format."
        )
    return available


def read_embedding_dataset(path: str | Path) -> Dataset:
    """Open a legacy xarray embedding store, indexed by its available index columns.

    Parameters
    ----------
    path : str | Path
        Zarr store written by the xarray-based embedding writer (not the AnnData format).

    Returns
    -------
    Dataset
        Dataset whose ``sample`` dimension is a MultiIndex of the index columns.
    """
    xr = import_optional("xarray")
    dataset = xr.open_zarr(path)
    return dataset.set_index(sample=get_available_index_columns(dataset, str(path)))


def _detach_to_cpu(value: Any) -> Any:
    return value.detach().cpu() if hasattr(value, "detach") else value


def _bounded_neighbours(kwargs: dict, key: str, default: int, fallback: int, n_samples: int) -> dict:
    """Copy of ``kwargs`` whose neighbour count ``key`` is smaller than ``n_samples``."""
    kwargs = {key: default, **kwargs}
    if kwargs[key] >= n_samples:
        _logger.warning(f"{key}={kwargs[key]} is not smaller than the {n_samples} samples; using {fallback}.")
        kwargs[key] = fallback
    return kwargs


def _reductions(
    features: np.ndarray, umap_kwargs: dict | None, phate_kwargs: dict | None, pca_kwargs: dict | None
) -> dict[str, np.ndarray]:
    """Compute the requested reductions; a failing one is skipped with a warning."""
    from viscy_utils.evaluation import dimensionality_reduction as reduction

    n_samples = len(features)
    requested: list[tuple[str, Callable[[], np.ndarray]]] = []
    if umap_kwargs:
        kwargs = _bounded_neighbours(umap_kwargs, "n_neighbors", 15, max(2, min(15, n_samples // 2)), n_samples)
        requested.append(("X_umap", lambda: reduction._fit_transform_umap(features, **kwargs)[1]))
    if phate_kwargs:
        phate_args = _bounded_neighbours(phate_kwargs, "knn", 5, max(2, n_samples // 2), n_samples)
        requested.append(("X_phate", lambda: reduction.compute_phate(features, **phate_args)[1]))
    if pca_kwargs:
        requested.append(("X_pca", lambda: reduction.compute_pca(features, **pca_kwargs)[0]))
    embeddings = {}
    for key, compute in requested:
        try:
            embeddings[key] = np.asarray(compute())
        except Exception as error:  # a failed reduction must not lose the predicted features
            message = f"{key} computation failed and is not written: {error!r}"
            _logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
    return embeddings


def _check_reduction_dependencies(umap_kwargs: dict | None, phate_kwargs: dict | None, pca_kwargs: dict | None):
    import_optional("anndata")
    for kwargs, module in ((umap_kwargs, "umap"), (phate_kwargs, "phate"), (pca_kwargs, "sklearn")):
        if kwargs:
            import_optional(module)


def write_embedding_dataset(
    output_path: str | Path,
    features: np.ndarray,
    index_df: pd.DataFrame,
    projections: np.ndarray | None = None,
    umap_kwargs: dict | None = None,
    phate_kwargs: dict | None = None,
    pca_kwargs: dict | None = None,
    overwrite: bool = False,
) -> None:
    """Write embeddings as an AnnData zarr store.

    Parameters
    ----------
    output_path : str | Path
        Store to write.
    features : np.ndarray
        ``(n_cells, n_features)``, written as ``X`` (dtype kept).
    index_df : pd.DataFrame
        One row per cell, written as ``obs``; ``fov_name`` is stripped of "/".
    projections : np.ndarray | None
        ``(n_cells, n_projections)``, written as ``obsm["X_projections"]``.
    umap_kwargs : dict | None
        Arguments of a UMAP of the features (``obsm["X_umap"]``); ``n_neighbors`` defaults to 15.
    phate_kwargs : dict | None
        Arguments of :func:`~viscy_utils.evaluation.dimensionality_reduction.compute_phate`
        (``obsm["X_phate"]``); ``knn`` defaults to 5.
    pca_kwargs : dict | None
        Arguments of :func:`~viscy_utils.evaluation.dimensionality_reduction.compute_pca` (``obsm["X_pca"]``).
    overwrite : bool
        Replace an existing store, once the new one is completely written.

    Raises
    ------
    FileExistsError
        If ``output_path`` exists and ``overwrite`` is false (nothing is computed or written).
    ValueError
        If the number of rows of ``features``, ``index_df`` and ``projections`` differ.

    Notes
    -----
    Neighbour counts not smaller than the number of cells are reduced with a warning. A reduction that
    fails is skipped with a warning so that the features are still written. The caller's dicts are not
    modified.
    """
    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise FileExistsError(f"Output path {output_path} already exists.")
    n_cells = len(features)
    if len(index_df) != n_cells or (projections is not None and len(projections) != n_cells):
        raise ValueError(
            f"Row counts differ: features {n_cells}, index_df {len(index_df)}, "
            f"projections {None if projections is None else len(projections)}."
        )
    ad = import_optional("anndata")
    if hasattr(ad.settings, "allow_write_nullable_strings"):
        ad.settings.allow_write_nullable_strings = True
    obs = index_df.reset_index(drop=True)
    if "fov_name" in obs:
        obs["fov_name"] = obs["fov_name"].astype(str).str.strip("/")
    obs.index = pd.RangeIndex(n_cells).astype(str)
    adata = ad.AnnData(X=features, obs=obs)
    if projections is not None:
        adata.obsm["X_projections"] = projections
    for key, embedding in _reductions(features, umap_kwargs, phate_kwargs, pca_kwargs).items():
        adata.obsm[key] = embedding
    write_anndata_zarr(adata, output_path, overwrite)


class EmbeddingWriter(BasePredictionWriter):
    """Write the predicted features, projections and index of every cell to an AnnData zarr store.

    ``predict_step`` must return ``{"features": Tensor (B, F), "projections": Tensor (B, P), "index": dict}``
    (``projections`` is optional). Under DDP every rank's predictions are gathered on rank 0, sorted by
    dataset index and de-duplicated (a padded distributed sampler repeats samples), so each cell is
    written exactly once in dataset order. Rank 0 writes the store.

    Parameters
    ----------
    output_path : Path
        AnnData zarr store to write.
    write_interval : {"batch", "epoch", "batch_and_epoch"}
        With "batch" the writer keeps the batches itself instead of Lightning; the store is written once
        at the end of the prediction epoch in every case.
    umap_kwargs : dict | None
        UMAP arguments for ``obsm["X_umap"]`` (off when None).
    phate_kwargs : dict | None
        PHATE arguments for ``obsm["X_phate"]`` (off when None).
    pca_kwargs : dict | None
        PCA arguments for ``obsm["X_pca"]`` (off when None).
    overwrite : bool
        Allow replacing an existing store; it is replaced only after the new store is complete.
    """

    def __init__(
        self,
        output_path: Path,
        write_interval: Literal["batch", "epoch", "batch_and_epoch"] = "epoch",
        umap_kwargs: dict | None = None,
        phate_kwargs: dict | None = None,
        pca_kwargs: dict | None = None,
        overwrite: bool = False,
    ) -> None:
        super().__init__(write_interval)
        self.output_path = Path(output_path)
        self.umap_kwargs = umap_kwargs
        self.phate_kwargs = phate_kwargs
        self.pca_kwargs = pca_kwargs
        self.overwrite = overwrite
        self._batches: list[EmbeddingBatch] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse an existing output store (unless ``overwrite``) and check optional dependencies."""
        if self.output_path.exists() and not self.overwrite:
            raise FileExistsError(f"Output path {self.output_path} already exists. Set overwrite=True to replace it.")
        _check_reduction_dependencies(self.umap_kwargs, self.phate_kwargs, self.pca_kwargs)
        self._batches = []

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch on CPU when Lightning does not keep predictions for the epoch."""
        if self.interval.on_epoch:
            return
        prediction = {key: _detach_to_cpu(value) for key, value in prediction.items()}
        self._batches.append(EmbeddingBatch(prediction, list(batch_indices or []), dataloader_idx))

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the store from Lightning's epoch predictions, or from the kept batches."""
        if self.interval.on_epoch:
            super().on_predict_epoch_end(trainer, pl_module)
        else:
            self._write(trainer, self._batches)
            self._batches = []

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Sequence[Any], batch_indices: Sequence[Any]
    ) -> None:
        """Gather, order and write all predictions of the epoch."""
        self._write(trainer, batches_from_epoch(list(predictions), list(batch_indices)))

    def _write(self, trainer: Trainer, batches: Sequence[EmbeddingBatch]) -> None:
        table = assemble_table(batches, rank=trainer.global_rank, world_size=trainer.world_size)
        tables = gather_to_rank_zero(table)
        error = None
        if tables is not None:
            try:
                merged = merge_tables(tables)
                write_embedding_dataset(
                    self.output_path,
                    features=merged.features,
                    index_df=merged.index,
                    projections=merged.projections,
                    umap_kwargs=self.umap_kwargs,
                    phate_kwargs=self.phate_kwargs,
                    pca_kwargs=self.pca_kwargs,
                    overwrite=self.overwrite,
                )
                _logger.info(f"Wrote embeddings of {len(merged.features)} cells to {self.output_path}")
            except Exception as exc:
                error = exc
        error_message = broadcast_from_rank_zero(None if error is None else repr(error))
        if error is not None:
            raise error
        if error_message is not None:
            raise RuntimeError(f"Rank 0 failed to write {self.output_path}: {error_message}")
