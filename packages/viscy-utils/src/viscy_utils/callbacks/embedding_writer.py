"""Write predicted embeddings to an AnnData zarr store.

The AnnData store has ``X`` = features ``(n_cells, n_features)``, ``obs`` = the tracking index columns
(``fov_name`` without leading/trailing "/", ``track_id``, ``t``, ``id``, ...) with unique obs names
``"0".."n-1"``, and ``obsm`` keys among ``X_projections``, ``X_pca``, ``X_umap`` and ``X_phate``.
anndata comes with ``pip install 'viscy-utils[anndata]'``; the reductions need ``viscy-utils[eval]``.
The legacy xarray reader (``read_embedding_dataset``, ``get_available_index_columns``) lives in
:mod:`viscy_utils.legacy_embeddings` and stays importable from here.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from viscy_utils._optional import import_optional
from viscy_utils.callbacks._embedding_assembly import write_store
from viscy_utils.callbacks._embedding_parts import PartWriter
from viscy_utils.callbacks._reduction_fit import bounded_neighbours as _bounded_neighbours
from viscy_utils.callbacks._reduction_fit import sampled_reductions
from viscy_utils.legacy_embeddings import get_available_index_columns, read_embedding_dataset
from viscy_utils.store import write_anndata_zarr, write_replacing

__all__ = ["read_embedding_dataset", "EmbeddingWriter", "write_embedding_dataset", "get_available_index_columns"]

_logger = logging.getLogger(__name__)


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


def _store_reductions(
    features, umap_kwargs: dict | None, phate_kwargs: dict | None, pca_kwargs: dict | None, max_cells: int | None
) -> dict[str, np.ndarray]:
    """Reductions of the assembled features: on every cell, or fitted on ``max_cells`` and applied to all."""
    if not (umap_kwargs or phate_kwargs or pca_kwargs):
        return {}
    if max_cells is None or features.shape[0] <= max_cells:
        return _reductions(np.asarray(features[:]), umap_kwargs, phate_kwargs, pca_kwargs)
    return sampled_reductions(features, max_cells, umap_kwargs, phate_kwargs, pca_kwargs)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("viscy-utils")
    except PackageNotFoundError:
        return "unknown"


class EmbeddingWriter(BasePredictionWriter):
    """Stream the predicted features, projections and index of every cell into an AnnData zarr store.

    ``predict_step`` must return ``{"features": Tensor (B, F), "projections": Tensor (B, P), "index": dict}``
    (``projections`` is optional). Every rank appends its batches, as they come, to its own chunked Zarr
    part in the hidden sibling folder ``.<name>.partial`` (so ``output_path`` must be on a filesystem
    that all nodes share); memory stays bounded by a chunk whatever the number of cells, and Lightning
    keeps no predictions. At the end of the epoch, after a barrier, rank 0 assembles the parts into one
    AnnData store (Zarr format 3) written to a temporary sibling and renamed to ``output_path`` only
    when complete, then removes the parts.

    The store holds ``X`` = features (half precision written as float32), ``obs`` = the index columns
    (``fov_name`` without surrounding "/", obs names ``"0".."n-1"``), ``obsm["X_projections"]``, the
    requested ``obsm`` reductions and ``uns["embedding_writer"]`` (provenance: row order, world size,
    duplicates dropped, checkpoint, package version). Rows are sorted by ``fov_name``, ``track_id``,
    ``t``, then dataloader and dataset index, whatever the number of ranks; a sample a padded
    distributed sampler repeats is written once.

    Parameters
    ----------
    output_path : Path
        AnnData zarr store to write.
    write_interval : {"batch", "epoch", "batch_and_epoch"}
        Accepted for configuration compatibility. Batches are always streamed to disk as they come and
        the store is always written once, at the end of the prediction epoch.
    umap_kwargs : dict | None
        UMAP arguments for ``obsm["X_umap"]`` (off when None).
    phate_kwargs : dict | None
        PHATE arguments for ``obsm["X_phate"]`` (off when None).
    pca_kwargs : dict | None
        PCA arguments for ``obsm["X_pca"]`` (off when None).
    overwrite : bool
        Allow replacing an existing store; it is replaced only after the new store is complete.
    max_cells : int | None
        Fit the reductions on this many randomly drawn cells (seed 0) and ``transform`` every cell in
        blocks, so their memory is bounded. None fits them on all cells, which are then read into memory.

    Notes
    -----
    An interrupted prediction leaves at most the hidden ``.<name>.partial`` folder (and a hidden
    ``.<name>.tmp-*`` store), never a store under ``output_path``; the next run removes the parts and
    starts afresh. Other ranks wait for rank 0's assembly in a collective, so the process group timeout
    (30 min by default) must exceed it.
    """

    def __init__(
        self,
        output_path: Path,
        write_interval: Literal["batch", "epoch", "batch_and_epoch"] = "epoch",
        umap_kwargs: dict | None = None,
        phate_kwargs: dict | None = None,
        pca_kwargs: dict | None = None,
        overwrite: bool = False,
        max_cells: int | None = None,
    ) -> None:
        super().__init__("batch")
        if write_interval not in ("batch", "epoch", "batch_and_epoch"):
            raise ValueError(f"write_interval must be 'batch', 'epoch' or 'batch_and_epoch', got {write_interval!r}.")
        if max_cells is not None and max_cells < 2:
            raise ValueError(f"max_cells must be None or at least 2, got {max_cells}.")
        self.output_path = Path(output_path)
        self.write_interval = write_interval
        self.umap_kwargs = umap_kwargs
        self.phate_kwargs = phate_kwargs
        self.pca_kwargs = pca_kwargs
        self.overwrite = overwrite
        self.max_cells = max_cells
        self._part: PartWriter | None = None

    @property
    def parts_path(self) -> Path:
        """Hidden sibling folder holding every rank's part while predicting."""
        return self.output_path.with_name(f".{self.output_path.name}.partial")

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse an existing output store (unless ``overwrite``), check dependencies, open this rank's part."""
        if self.output_path.exists() and not self.overwrite:
            raise FileExistsError(f"Output path {self.output_path} already exists. Set overwrite=True to replace it.")
        _check_reduction_dependencies(self.umap_kwargs, self.phate_kwargs, self.pca_kwargs)
        if trainer.is_global_zero:
            if self.parts_path.exists():
                _logger.info(f"Removing the parts of an interrupted prediction: {self.parts_path}")
                shutil.rmtree(self.parts_path)
            self.parts_path.mkdir(parents=True)
        trainer.strategy.barrier("EmbeddingWriter.on_predict_start")
        part = self.parts_path / f"rank-{trainer.global_rank:05d}"
        self._part = PartWriter(part, rank=trainer.global_rank, world_size=trainer.world_size)

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
        """Append the batch to this rank's part."""
        self._part.append(prediction, batch_indices, dataloader_idx)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Close every part; rank 0 assembles and moves the store into place; all ranks learn the outcome."""
        self._part.close()
        self._part = None
        trainer.strategy.barrier("EmbeddingWriter.on_predict_epoch_end")
        error = None
        if trainer.is_global_zero:
            try:
                self._assemble(trainer, pl_module)
            except Exception as exc:
                error = exc
        error_message = trainer.strategy.broadcast(None if error is None else repr(error), src=0)
        if error is not None:
            raise error
        if error_message is not None:
            raise RuntimeError(f"Rank 0 failed to write {self.output_path}: {error_message}")

    def _assemble(self, trainer: Trainer, pl_module: LightningModule) -> None:
        import zarr

        parts = [zarr.open_group(self.parts_path / f"rank-{rank:05d}", mode="r") for rank in range(trainer.world_size)]
        provenance = {
            "world_size": trainer.world_size,
            "model": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
            "ckpt_path": str(trainer.ckpt_path or ""),
            "viscy_utils_version": _package_version(),
            "reductions_max_cells": -1 if self.max_cells is None else self.max_cells,
        }
        counts = {}

        def write(path: Path) -> None:
            counts["cells"] = write_store(
                path,
                parts,
                scratch=self.parts_path / "reorder",
                reduce=lambda features: _store_reductions(
                    features, self.umap_kwargs, self.phate_kwargs, self.pca_kwargs, self.max_cells
                ),
                uns=provenance,
            )

        write_replacing(write, self.output_path, self.overwrite)
        shutil.rmtree(self.parts_path)
        _logger.info(f"Wrote embeddings of {counts['cells']} cells to {self.output_path}")
