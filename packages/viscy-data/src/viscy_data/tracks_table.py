"""Reading one FOV's tracking table, checked against its plate position.

``read_tracks_csv`` is the single reader of the per-FOV ``tracks.csv`` files of the multi-experiment
index. Every error names the CSV, the experiment, the FOV and the column:

- the file cannot be parsed (empty, not CSV) or lacks one of ``track_id, t, y, x``;
- ``track_id``, ``t`` or ``parent_track_id`` hold non-numeric or non-integer values, or ``track_id``
  / ``t`` are missing in some rows;
- ``y`` or ``x`` is not a numeric column;
- ``t`` lies outside ``[0, T - 1]`` for the plate's ``T`` timepoints;
- a ``(track_id, t)`` pair appears twice.

Three faults are repaired rather than rejected, each counted and reported once per file with a
``UserWarning`` naming the file and the number of rows:

- rows whose ``y`` or ``x`` is NaN or infinite are dropped;
- rows whose centroid lies outside the image are dropped (no patch can be centred on them);
- rows whose ``parent_track_id`` names no track of the table (other than the conventional -1 or NaN)
  are kept, and their track starts its own lineage.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["REQUIRED_TRACKS_COLUMNS", "read_tracks_csv"]

REQUIRED_TRACKS_COLUMNS = ("track_id", "t", "y", "x")
_INTEGER_COLUMNS = ("track_id", "t")
_COORDINATE_COLUMNS = ("y", "x")
_SHOWN_ROWS = 5


def _csv_lines(table: pd.DataFrame, mask: np.ndarray) -> list[int]:
    """CSV line numbers (header is line 1) of the first flagged rows (the index keeps the file's row numbers)."""
    return [int(i) + 2 for i in table.index[mask][:_SHOWN_ROWS]]


def _numeric(table: pd.DataFrame, column: str, where: str, integer: bool) -> pd.Series:
    """``table[column]`` as numbers; raise naming the first rows that are not numbers (or not integers)."""
    values = pd.to_numeric(table[column], errors="coerce")
    bad = (values.isna() & table[column].notna()).to_numpy()
    if integer:
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        bad |= np.isinf(numbers) | (np.isfinite(numbers) & (numbers % 1 != 0))
    if bad.any():
        kind = "integers" if integer else "numbers"
        raise ValueError(
            f"{where}: column '{column}' must hold {kind}; {int(bad.sum())} rows do not "
            f"(CSV lines {_csv_lines(table, bad)}, values {table[column][bad].head(_SHOWN_ROWS).tolist()})."
        )
    return values


def _drop_rows(table: pd.DataFrame, drop: np.ndarray, where: str, reason: str) -> pd.DataFrame:
    """``table`` without the ``drop`` rows, reported by one warning naming the file and the count."""
    if drop.any():
        warnings.warn(
            f"{where}: dropped {int(drop.sum())} of {len(table)} rows {reason} (CSV lines {_csv_lines(table, drop)}).",
            UserWarning,
            stacklevel=3,
        )
        table = table.loc[~drop]
    return table


def _check_time_range(table: pd.DataFrame, where: str, n_timepoints: int) -> None:
    t = table["t"].to_numpy()
    outside = (t < 0) | (t >= n_timepoints)
    if outside.any():
        raise ValueError(
            f"{where}: column 't' must be in [0, {n_timepoints - 1}] (the plate has {n_timepoints} timepoints); "
            f"{int(outside.sum())} rows are not (CSV lines {_csv_lines(table, outside)}, "
            f"values {t[outside][:_SHOWN_ROWS].tolist()})."
        )


def _check_unique_observations(table: pd.DataFrame, where: str) -> None:
    duplicated = table.duplicated(["track_id", "t"], keep=False).to_numpy()
    if duplicated.any():
        pairs = table.loc[duplicated, ["track_id", "t"]].drop_duplicates().head(_SHOWN_ROWS)
        raise ValueError(
            f"{where}: each (track_id, t) must appear once; {int(duplicated.sum())} rows repeat a pair "
            f"(CSV lines {_csv_lines(table, duplicated)}, pairs {list(pairs.itertuples(index=False, name=None))})."
        )


def _warn_unknown_parents(table: pd.DataFrame, where: str) -> None:
    parents = table["parent_track_id"].to_numpy(dtype=float, na_value=np.nan)
    named = np.isfinite(parents) & (parents >= 0)
    unknown = named & ~np.isin(parents, table["track_id"].to_numpy())
    if unknown.any():
        tracks = sorted(set(table.loc[unknown, "track_id"].tolist()))
        warnings.warn(
            f"{where}: {int(unknown.sum())} rows name a parent_track_id that is not a track of the table "
            f"(tracks {tracks[:_SHOWN_ROWS]}{', ...' if len(tracks) > _SHOWN_ROWS else ''}); "
            "those tracks start their own lineage.",
            UserWarning,
            stacklevel=3,
        )


def read_tracks_csv(path: str | Path, experiment: str, fov_name: str, image_shape: tuple[int, ...]) -> pd.DataFrame:
    """Read and check one FOV's tracks CSV.

    Parameters
    ----------
    path : str | Path
        The CSV (columns ``track_id, t, y, x`` and optionally ``parent_track_id``, ``id``, ...).
    experiment : str
        Experiment name (for messages).
    fov_name : str
        FOV name ``"row/col/fov"`` (for messages).
    image_shape : tuple[int, ...]
        ``(T, C, Z, Y, X)`` of the FOV's image: ``t`` must be in ``[0, T - 1]``; rows whose centroid
        lies outside the ``Y x X`` image are dropped.

    Returns
    -------
    pd.DataFrame
        The table with integer ``track_id`` and ``t``, float ``y`` and ``x``, rows with non-finite
        or out-of-image coordinates dropped, and a RangeIndex.

    Raises
    ------
    ValueError
        If the file cannot be parsed or a check listed in the module notes fails.

    Warns
    -----
    UserWarning
        Once per file and reason, when rows with non-finite or out-of-image coordinates are dropped
        or parents are unknown.
    """
    path = Path(path)
    where = f"Experiment '{experiment}', FOV {fov_name}, tracks CSV {path}"
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise ValueError(f"{where}: cannot be read as a CSV table: {error}") from error
    missing = [c for c in REQUIRED_TRACKS_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: lacks columns {missing}; expected at least {list(REQUIRED_TRACKS_COLUMNS)}.")
    for column in _INTEGER_COLUMNS:
        values = _numeric(table, column, where, integer=True)
        absent = values.isna().to_numpy()
        if absent.any():
            raise ValueError(
                f"{where}: column '{column}' is empty in {int(absent.sum())} rows "
                f"(CSV lines {_csv_lines(table, absent)})."
            )
        table[column] = values.astype(np.int64)
    for column in _COORDINATE_COLUMNS:
        table[column] = _numeric(table, column, where, integer=False).astype(float)
    if "parent_track_id" in table.columns:
        table["parent_track_id"] = _numeric(table, "parent_track_id", where, integer=True)
    n_timepoints, height, width = image_shape[0], image_shape[-2], image_shape[-1]
    coordinates = table[list(_COORDINATE_COLUMNS)].to_numpy(dtype=float)
    table = _drop_rows(table, ~np.isfinite(coordinates).all(axis=1), where, "with NaN or infinite y/x")
    y, x = table["y"].to_numpy(), table["x"].to_numpy()
    outside = (y < 0) | (y >= height) | (x < 0) | (x >= width)
    table = _drop_rows(table, outside, where, f"with a centroid outside the {height}x{width} image")
    _check_time_range(table, where, n_timepoints)
    _check_unique_observations(table, where)
    if "parent_track_id" in table.columns:
        _warn_unknown_parents(table, where)
    return table.reset_index(drop=True)
