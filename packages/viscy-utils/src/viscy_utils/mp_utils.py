"""Process-pool helpers and the summary statistics stored as normalization metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

__all__ = ["mp_wrapper", "mp_get_val_stats", "get_val_stats", "get_row_stats"]

_PERCENTILES = [1, 5, 25, 50, 75, 95, 99]


def mp_wrapper(fn: Callable, fn_args: Sequence[tuple], workers: int) -> list:
    """Apply ``fn`` to each argument tuple in a process pool.

    Parameters
    ----------
    fn : Callable
        Picklable function.
    fn_args : Sequence[tuple]
        One tuple of positional arguments per call.
    workers : int
        Number of worker processes.

    Returns
    -------
    list
        Results in the order of ``fn_args``.
    """
    if not fn_args:
        return []
    with ProcessPoolExecutor(workers) as executor:
        return list(executor.map(fn, *zip(*fn_args, strict=True)))


def mp_get_val_stats(fn_args: Sequence[np.ndarray], workers: int) -> list[dict[str, float]]:
    """Compute :func:`get_val_stats` of several arrays in a process pool.

    Parameters
    ----------
    fn_args : Sequence[np.ndarray]
        Arrays of sampled values.
    workers : int
        Number of worker processes.

    Returns
    -------
    list[dict[str, float]]
        One statistics dict per array, in input order.
    """
    return mp_wrapper(get_val_stats, [(values,) for values in fn_args], workers)


def get_val_stats(sample_values: Any) -> dict[str, float]:
    """NaN-aware summary statistics of sampled intensities.

    Parameters
    ----------
    sample_values : array-like
        Values of any shape.

    Returns
    -------
    dict[str, float]
        ``mean``, ``std``, ``median``, ``iqr`` (p75 - p25), ``p5``, ``p95``, ``p95_p5``, ``p1``, ``p99``,
        ``p99_p1``, as Python floats.
    """
    return get_row_stats(np.asarray(sample_values).reshape(1, -1))[0]


def get_row_stats(values: np.ndarray) -> list[dict[str, float]]:
    """:func:`get_val_stats` of each row of a 2-D array, computed in one vectorised pass.

    Parameters
    ----------
    values : np.ndarray
        ``(n_groups, n_values)`` array.

    Returns
    -------
    list[dict[str, float]]
        One statistics dict per row.
    """
    p1, p5, p25, p50, p75, p95, p99 = np.nanpercentile(values, _PERCENTILES, axis=1)
    columns = {
        "mean": np.nanmean(values, axis=1),
        "std": np.nanstd(values, axis=1),
        "median": p50,
        "iqr": p75 - p25,
        "p5": p5,
        "p95": p95,
        "p95_p5": p95 - p5,
        "p1": p1,
        "p99": p99,
        "p99_p1": p99 - p1,
    }
    return [{key: float(column[row]) for key, column in columns.items()} for row in range(values.shape[0])]
