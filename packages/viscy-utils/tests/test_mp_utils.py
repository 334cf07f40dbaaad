import numpy as np
import pytest

from viscy_utils.mp_utils import get_row_stats, get_val_stats, mp_get_val_stats, mp_wrapper

KEYS = ["mean", "std", "median", "iqr", "p5", "p95", "p95_p5", "p1", "p99", "p99_p1"]


def _power(base: int, exponent: int) -> int:
    return base**exponent


def test_get_val_stats_matches_numpy_and_ignores_nan():
    values = np.random.default_rng(0).normal(3, 2, size=(50, 20))
    with_nan = np.concatenate([values.ravel(), [np.nan, np.nan]])
    stats = get_val_stats(with_nan)
    assert list(stats) == KEYS
    assert all(isinstance(v, float) for v in stats.values())
    p1, p5, p25, p50, p75, p95, p99 = np.percentile(values, [1, 5, 25, 50, 75, 95, 99])
    assert stats["mean"] == pytest.approx(values.mean())
    assert stats["std"] == pytest.approx(values.std())
    assert stats["median"] == pytest.approx(p50)
    assert stats["iqr"] == pytest.approx(p75 - p25)
    assert stats["p95_p5"] == pytest.approx(p95 - p5)
    assert stats["p99_p1"] == pytest.approx(p99 - p1)


def test_row_stats_equal_per_row_stats():
    rows = np.random.default_rng(1).random((3, 40))
    assert get_row_stats(rows) == [get_val_stats(row) for row in rows]


def test_mp_wrapper_keeps_input_order():
    assert mp_wrapper(_power, [(2, 3), (3, 2), (5, 0)], workers=2) == [8, 9, 1]


def test_mp_get_val_stats():
    arrays = [np.arange(10.0), np.arange(20.0)]
    assert mp_get_val_stats(arrays, workers=2) == [get_val_stats(a) for a in arrays]
