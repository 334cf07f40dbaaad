"""Append one rank's predicted batches to its own chunked zarr part, holding at most a chunk in memory.

A part is a Zarr v3 group with the arrays ``features`` ``(n, F)``, optionally ``projections`` ``(n, P)``,
``order_key`` ``(n, 2)`` int64 (dataloader index, dataset index of each row) and one array per tracking
index column under ``index/``. Rows are buffered until a whole chunk is full, so every chunk is written
once; the last, partial chunk is written by :meth:`PartWriter.close`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

_REQUIRED_KEYS = ("features", "index")
_CHUNK_BYTES = 8 * 2**20


def to_numpy(value: Any) -> np.ndarray:
    """A tensor or a collated list as a numpy array; half-precision floats become float32."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _check_prediction(prediction: Any) -> None:
    if not isinstance(prediction, Mapping) or any(key not in prediction for key in _REQUIRED_KEYS):
        found = list(prediction) if isinstance(prediction, Mapping) else type(prediction).__name__
        raise ValueError(
            f"EmbeddingWriter expects predict_step to return a dict with keys {list(_REQUIRED_KEYS)} "
            f"(and optionally 'projections'), got {found}."
        )


def _column(values: Any, n_rows: int, name: str) -> np.ndarray:
    column = to_numpy(values)
    if column.dtype.kind in "OUS":
        column = column.astype(str).astype(np.dtypes.StringDType())
    if column.shape != (n_rows,):
        raise ValueError(
            f"predict_step returned {n_rows} feature rows but index column {name!r} of shape {column.shape}."
        )
    return column


class PartWriter:
    """Append predicted batches of one rank to a Zarr v3 part at ``directory``.

    Parameters
    ----------
    directory : Path
        Group to create (must not exist).
    rank, world_size : int
        This process's global rank and the world size; they give the order key of samples whose dataset
        index Lightning could not record (``position_on_rank * world_size + rank``, the order of an
        unshuffled distributed sampler).
    """

    def __init__(self, directory: Path, rank: int, world_size: int) -> None:
        self.group = zarr.open_group(directory, mode="w-", zarr_format=3)
        self.rank = rank
        self.world_size = world_size
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_rows = 0
        self._chunk_rows = 0
        self._columns: list[str] | None = None
        self._seen: dict[int, int] = {}
        self._warned = False

    def append(self, prediction: Any, dataset_indices: Sequence[int] | None, dataloader_idx: int = 0) -> None:
        """Buffer one batch and write every chunk it completes."""
        _check_prediction(prediction)
        features = to_numpy(prediction["features"])
        n_rows = len(features)
        arrays = {"features": features, "order_key": self._order_key(dataset_indices, dataloader_idx, n_rows)}
        if "projections" in prediction:
            arrays["projections"] = to_numpy(prediction["projections"])
        index = prediction["index"]
        columns = list(index)
        if self._columns is None:
            self._columns = columns
            self.group.attrs["columns"] = columns
        elif columns != self._columns:
            raise ValueError(f"predict_step index columns changed from {self._columns} to {columns}.")
        arrays.update({f"index/{name}": _column(index[name], n_rows, name) for name in columns})
        if self._pending and set(arrays) != set(self._pending):
            raise ValueError(
                f"predict_step outputs changed between batches: {sorted(self._pending)} then {sorted(arrays)}."
            )
        if not self._chunk_rows:
            self._chunk_rows = max(1, _CHUNK_BYTES // max(1, features[0].nbytes if n_rows else 1))
        for key, value in arrays.items():
            self._pending.setdefault(key, []).append(value)
        self._pending_rows += n_rows
        if self._pending_rows >= self._chunk_rows:
            self._flush(whole_chunks_only=True)

    def close(self) -> None:
        """Write the buffered rows (the last, partial chunk) and record the number of rows."""
        self._flush(whole_chunks_only=False)
        self.group.attrs["n_rows"] = int(self.group["order_key"].shape[0]) if "order_key" in self.group else 0

    def _order_key(self, dataset_indices: Sequence[int] | None, dataloader_idx: int, n_rows: int) -> np.ndarray:
        position = self._seen.get(dataloader_idx, 0)
        self._seen[dataloader_idx] = position + n_rows
        if dataset_indices is not None and len(dataset_indices) == n_rows:
            indices = np.asarray(dataset_indices, dtype=np.int64)
        else:
            if not self._warned:
                warnings.warn(
                    "EmbeddingWriter could not get the dataset indices of the predicted batches; samples are "
                    "ordered as an unshuffled distributed sampler would, and duplicates cannot be detected.",
                    stacklevel=3,
                )
                self._warned = True
            indices = np.arange(position, position + n_rows, dtype=np.int64) * self.world_size + self.rank
        return np.stack([np.full(n_rows, dataloader_idx, dtype=np.int64), indices], axis=1)

    def _flush(self, whole_chunks_only: bool) -> None:
        n_write = self._pending_rows
        if whole_chunks_only:
            n_write -= n_write % self._chunk_rows
        if n_write == 0:
            return
        for key, values in self._pending.items():
            stacked = np.concatenate(values)
            self._append(key, stacked[:n_write])
            self._pending[key] = [stacked[n_write:]]
        self._pending_rows -= n_write

    def _append(self, key: str, values: np.ndarray) -> None:
        if key not in self.group:
            self.group.create_array(
                key,
                shape=(0, *values.shape[1:]),
                chunks=(self._chunk_rows, *values.shape[1:]),
                dtype=values.dtype,
                compressors=None,
            )
        self.group[key].append(values, axis=0)


def part_rows(group: zarr.Group) -> int:
    """Number of rows of a closed part."""
    return int(group.attrs["n_rows"])


def read_part_index(group: zarr.Group) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The tracking index columns (strings as numpy ``StringDType``) and the ``(n, 2)`` order keys of a part."""
    if not part_rows(group):
        return {}, np.empty((0, 2), np.int64)
    columns = {name: group[f"index/{name}"][:] for name in group.attrs["columns"]}
    return columns, np.asarray(group["order_key"][:])
