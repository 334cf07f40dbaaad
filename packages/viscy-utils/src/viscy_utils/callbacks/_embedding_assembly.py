"""Assemble the ranks' embedding parts into one AnnData Zarr v3 store, in a fixed row order.

Rows are sorted by ``fov_name`` (without surrounding "/"), ``track_id`` and ``t`` (those present), then by
dataloader and dataset index, so the order does not depend on the number of ranks. A sample seen twice
(the padding of a distributed sampler) has the same dataloader and dataset index and is kept once.
Features are moved into that order through per-block scratch files: one sequential pass over the parts,
then one pass over the output blocks, so memory is bounded by a block whatever the number of cells.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from viscy_utils._optional import import_optional
from viscy_utils.callbacks._embedding_parts import part_rows, read_part_index
from viscy_utils.store import zarr3_write_settings

SORT_COLUMNS = ("fov_name", "track_id", "t")
_ARRAY_ENCODING = {"encoding-type": "array", "encoding-version": "0.2.0"}
_BLOCK_BYTES = 16 * 2**20


def _column(values: np.ndarray, strip: bool) -> pd.Categorical | np.ndarray:
    """Strings as a categorical (sorted categories, as anndata writes them); ``fov_name`` stripped of "/"."""
    if values.dtype.kind not in "TUSO":
        return values
    categories, codes = np.unique(values, return_inverse=True)
    categories = pd.Index(categories.astype(object))
    if strip:
        categories, remap = np.unique(np.asarray(categories.str.strip("/"), dtype=object), return_inverse=True)
        codes = remap[codes]
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def plan_rows(parts: list[zarr.Group]) -> tuple[pd.DataFrame, list[np.ndarray], int]:
    """Final ``obs`` and, per part, the output row of each of its rows (-1: a dropped duplicate).

    Returns
    -------
    tuple[pd.DataFrame, list[np.ndarray], int]
        ``obs`` in output order (string columns categorical, ``fov_name`` stripped of "/", index
        ``"0".."n-1"``), the destinations, and the number of duplicates dropped.
    """
    indexes, keys = zip(*(read_part_index(part) for part in parts), strict=True)
    sizes = [len(key) for key in keys]
    key = np.concatenate(keys)
    if not len(key):
        raise ValueError("EmbeddingWriter received no predictions to write.")
    names = next(list(index) for index, size in zip(indexes, sizes, strict=True) if size)
    frame = pd.DataFrame(
        {
            name: _column(np.concatenate([index[name] for index in indexes if index]), name == "fov_name")
            for name in names
        }
    )
    first = np.lexsort((np.arange(len(key)), key[:, 1], key[:, 0]))
    unique = np.ones(len(first), dtype=bool)
    unique[1:] = np.any(key[first[1:]] != key[first[:-1]], axis=1)
    kept = np.sort(first[unique])
    sort_frame = frame.iloc[kept][[c for c in SORT_COLUMNS if c in frame]].reset_index(drop=True)
    sort_frame["_dataloader"], sort_frame["_dataset_index"] = key[kept, 0], key[kept, 1]
    rows = kept[sort_frame.sort_values(list(sort_frame.columns), kind="mergesort").index.to_numpy()]
    del sort_frame
    destination = np.full(len(key), -1, dtype=np.int64)
    destination[rows] = np.arange(len(rows))
    obs = frame.iloc[rows].reset_index(drop=True)
    obs.index = pd.RangeIndex(len(obs)).astype(str)
    return obs, np.split(destination, np.cumsum(sizes)[:-1]), len(key) - len(rows)


def block_rows(row_shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Rows per output chunk: about 16 MiB."""
    return max(1, _BLOCK_BYTES // max(1, int(np.prod(row_shape)) * np.dtype(dtype).itemsize))


def copy_rows(sources: list[zarr.Array], destinations: list[np.ndarray], target: zarr.Array, scratch: Path) -> None:
    """Write every source row whose destination is not -1 to that row of ``target``.

    Each source is read once, chunk by chunk; its rows are appended to one scratch file per output chunk,
    and each output chunk is then filled from its scratch file and written once.
    """
    scratch.mkdir(parents=True)
    rows_per_block = target.chunks[0]
    row_shape, dtype = target.shape[1:], target.dtype
    for source, destination in zip(sources, destinations, strict=True):
        step = source.chunks[0]
        for start in range(0, source.shape[0], step):
            dest = destination[start : start + step]
            keep = dest >= 0
            if not keep.any():
                continue
            rows = np.asarray(source[start : start + step])[keep].astype(dtype, copy=False)
            dest = dest[keep]
            order = np.argsort(dest // rows_per_block, kind="stable")
            rows, dest = rows[order], dest[order]
            bounds = np.flatnonzero(np.diff(dest // rows_per_block)) + 1
            for block_values, block_dest in zip(np.split(rows, bounds), np.split(dest, bounds), strict=True):
                block = block_dest[0] // rows_per_block
                with open(scratch / f"{block}.rows", "ab") as file:
                    file.write(np.ascontiguousarray(block_values).tobytes())
                with open(scratch / f"{block}.dest", "ab") as file:
                    file.write(block_dest.tobytes())
    for start in range(0, target.shape[0], rows_per_block):
        stop = min(target.shape[0], start + rows_per_block)
        block = start // rows_per_block
        dest = np.fromfile(scratch / f"{block}.dest", dtype=np.int64) - start
        values = np.fromfile(scratch / f"{block}.rows", dtype=dtype).reshape(-1, *row_shape)
        filled = np.empty((stop - start, *row_shape), dtype=dtype)
        filled[dest] = values
        target[start:stop] = filled
        (scratch / f"{block}.dest").unlink()
        (scratch / f"{block}.rows").unlink()


def _create_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype: np.dtype) -> zarr.Array:
    array = group.create_array(name, shape=shape, chunks=(block_rows(shape[1:], dtype), *shape[1:]), dtype=dtype)
    array.attrs.update(_ARRAY_ENCODING)
    return array


def _stream_array(
    sources: list[zarr.Array], destinations: list[np.ndarray], n_rows: int, group: zarr.Group, name: str, scratch: Path
) -> zarr.Array:
    dtype = np.result_type(*(source.dtype for source in sources))
    target = _create_array(group, name, (n_rows, *sources[0].shape[1:]), dtype)
    copy_rows(sources, destinations, target, scratch)
    return target


def write_store(
    path: Path,
    parts: list[zarr.Group],
    scratch: Path,
    reduce: Callable[[zarr.Array], dict[str, np.ndarray]],
    uns: dict,
) -> int:
    """Write the AnnData store of ``parts`` to ``path`` (Zarr format 3).

    Parameters
    ----------
    path : Path
        Store to create.
    parts : list[zarr.Group]
        Closed parts of every rank, in rank order.
    scratch : Path
        Folder for the reordering files (must not exist).
    reduce : Callable[[zarr.Array], dict[str, np.ndarray]]
        Computes ``obsm`` reductions from the written ``X``.
    uns : dict
        Provenance written to ``uns["embedding_writer"]`` (row order, rows per rank and duplicates are added).

    Returns
    -------
    int
        Number of cells written.
    """
    ad = import_optional("anndata")
    obs, destinations, n_duplicates = plan_rows(parts)
    live = [(part, dest) for part, dest in zip(parts, destinations, strict=True) if part_rows(part)]
    kept = [dest for _, dest in live]
    has_projections = all("projections" in part for part, _ in live)
    n_features = live[0][0]["features"].shape[1]
    provenance = {
        **uns,
        "row_order": [c for c in SORT_COLUMNS if c in obs],
        "rows_per_rank": [part_rows(part) for part in parts],
        "duplicates_dropped": n_duplicates,
    }
    with zarr3_write_settings():
        var = pd.DataFrame(index=pd.RangeIndex(n_features).astype(str))
        ad.AnnData(obs=obs, var=var, uns={"embedding_writer": provenance}).write_zarr(path)
        group = zarr.open_group(path, mode="r+")
        x = _stream_array([part["features"] for part, _ in live], kept, len(obs), group, "X", scratch / "X")
        if has_projections:
            projections = [part["projections"] for part, _ in live]
            _stream_array(projections, kept, len(obs), group["obsm"], "X_projections", scratch / "projections")
        for key, embedding in reduce(x).items():
            _create_array(group["obsm"], key, embedding.shape, embedding.dtype)[:] = embedding
        zarr.consolidate_metadata(path)
    return len(obs)
