"""Read legacy xarray embedding stores (the format written before the AnnData embedding writer).

xarray is a viscy-utils dependency; it is imported when a store is read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from viscy_data import INDEX_COLUMNS
from viscy_utils._optional import import_optional

if TYPE_CHECKING:
    from xarray import Dataset

__all__ = ["get_available_index_columns", "read_embedding_dataset"]

_logger = logging.getLogger(__name__)


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
