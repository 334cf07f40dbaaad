"""Collect per-rank embedding batches into one deterministic, duplicate-free table on rank 0 (online evaluation)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch.distributed as dist

from viscy_data.distributed import get_rank, get_world_size
from viscy_utils.callbacks._embedding_parts import _check_prediction, to_numpy


@dataclass
class EmbeddingBatch:
    """One predicted batch: the prediction dict, its dataset indices and its dataloader."""

    prediction: Mapping[str, Any]
    dataset_indices: Sequence[int]
    dataloader_idx: int = 0


@dataclass
class EmbeddingTable:
    """Features, optional projections and the index rows of a set of samples.

    ``order_key`` is ``(n, 2)`` int64: dataloader index and dataset index of each sample; it defines the
    output order and identifies duplicates.
    """

    features: np.ndarray
    projections: np.ndarray | None
    index: pd.DataFrame
    order_key: np.ndarray


def assemble_table(batches: Sequence[EmbeddingBatch], rank: int, world_size: int) -> EmbeddingTable:
    """Stack one rank's batches into an :class:`EmbeddingTable`.

    When Lightning could not record dataset indices, a sample's key falls back to
    ``position_on_rank * world_size + rank``, which matches the order of an unshuffled distributed sampler.
    """
    for batch in batches:
        _check_prediction(batch.prediction)
    if not batches:
        return EmbeddingTable(np.empty((0, 0), np.float32), None, pd.DataFrame(), np.empty((0, 2), np.int64))
    features = np.concatenate([to_numpy(b.prediction["features"]) for b in batches])
    has_projections = all("projections" in b.prediction for b in batches)
    projections = np.concatenate([to_numpy(b.prediction["projections"]) for b in batches]) if has_projections else None
    index = pd.concat(
        [pd.DataFrame({k: to_numpy(v) for k, v in b.prediction["index"].items()}) for b in batches],
        ignore_index=True,
    )
    if len(index) != len(features):
        raise ValueError(f"predict_step returned {len(features)} feature rows but {len(index)} index rows.")
    sizes = [len(to_numpy(b.prediction["features"])) for b in batches]
    dataloader_ids = np.repeat([b.dataloader_idx for b in batches], sizes)
    if all(len(b.dataset_indices) == size for b, size in zip(batches, sizes, strict=True)):
        dataset_indices = np.concatenate([np.asarray(b.dataset_indices, dtype=np.int64) for b in batches])
    else:
        warnings.warn(
            "EmbeddingWriter could not get the dataset indices of the predicted batches; samples are ordered "
            "as an unshuffled distributed sampler would, and duplicates cannot be detected.",
            stacklevel=2,
        )
        dataset_indices = np.concatenate([np.arange(size) for size in sizes]) * world_size + rank
    order_key = np.stack([dataloader_ids.astype(np.int64), dataset_indices], axis=1)
    return EmbeddingTable(features, projections, index, order_key)


def merge_tables(tables: Sequence[EmbeddingTable]) -> EmbeddingTable:
    """Concatenate tables, sort by ``order_key`` and keep the first sample of each duplicated key."""
    tables = [table for table in tables if len(table.order_key)]
    if not tables:
        raise ValueError("EmbeddingWriter received no predictions to write.")
    keys = np.concatenate([table.order_key for table in tables])
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    sorted_keys = keys[order]
    first_of_key = np.ones(len(order), dtype=bool)
    first_of_key[1:] = np.any(sorted_keys[1:] != sorted_keys[:-1], axis=1)
    rows = order[first_of_key]
    has_projections = all(table.projections is not None for table in tables)
    return EmbeddingTable(
        features=np.concatenate([table.features for table in tables])[rows],
        projections=np.concatenate([table.projections for table in tables])[rows] if has_projections else None,
        index=pd.concat([table.index for table in tables], ignore_index=True).iloc[rows].reset_index(drop=True),
        order_key=keys[rows],
    )


def gather_to_rank_zero(table: EmbeddingTable) -> list[EmbeddingTable] | None:
    """Gather every rank's table on rank 0 (a CPU/gloo group is used for non-gloo backends).

    Returns
    -------
    list[EmbeddingTable] | None
        All tables in rank order on rank 0, ``None`` on the other ranks.
    """
    if get_world_size() == 1:
        return [table]
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    gathered = [None] * get_world_size() if get_rank() == 0 else None
    dist.gather_object(table, gathered, dst=0, group=group)
    if group is not None:
        dist.destroy_process_group(group)
    return gathered
