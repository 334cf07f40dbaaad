import logging
import tracemalloc
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from viscy_data.sampler import FlexibleBatchSampler


def _anchors(sizes: dict[tuple[str, str], int], hours: int = 1, seed: int = 0) -> pd.DataFrame:
    """Anchors with ``sizes[(experiment, condition)]`` rows each, hpi uniform over ``0..hours-1``."""
    rng = np.random.default_rng(seed)
    frames = [
        pd.DataFrame({"experiment": exp, "condition": cond, "hours_post_infection": rng.integers(0, hours, n) * 1.0})
        for (exp, cond), n in sizes.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _batches(sampler, epochs: int = 1) -> list[list[int]]:
    return [batch for _ in range(epochs) for batch in sampler]


BALANCED = {("a", "inf"): 3000, ("a", "mock"): 1000, ("b", "inf"): 2000, ("b", "mock"): 2000}


@pytest.mark.parametrize(
    ("flag", "column"),
    [
        ("experiment_aware", "experiment"),
        ("condition_balanced", "condition"),
        ("temporal_enrichment", "hours_post_infection"),
    ],
)
def test_enabled_axis_requires_its_column(flag, column):
    anchors = _anchors({("a", "x"): 50}).drop(columns=column)
    kwargs = {"experiment_aware": False, "condition_balanced": False, flag: True}
    with pytest.raises(ValueError, match=f"{flag}=True requires '{column}' column in valid_anchors"):
        FlexibleBatchSampler(anchors, batch_size=4, **kwargs)


def test_disabled_axes_need_no_columns():
    sampler = FlexibleBatchSampler(pd.DataFrame({"v": range(10)}), 5, experiment_aware=False, condition_balanced=False)
    assert sorted(i for b in sampler for i in b) == list(range(10))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"leaky": 1.0}, "leaky must be in"),
        ({"temporal_global_fraction": 1.5}, "temporal_global_fraction"),
        ({"num_replicas": 2, "rank": 2}, "rank"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"experiment_weights": {"zzz": 1.0}}, "zero total weight"),
        ({"condition_ratio": {"inf": -1.0}}, "non-negative"),
        ({"batch_size": 5000}, "larger than every anchor pool"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlexibleBatchSampler(_anchors(BALANCED), **{"batch_size": 8, **kwargs})


def test_empty_anchors_raise():
    with pytest.raises(ValueError, match="valid_anchors is empty"):
        FlexibleBatchSampler(_anchors({("a", "x"): 0}), batch_size=4)


def test_experiment_aware_batches_are_single_experiment_and_size_weighted():
    anchors = _anchors(BALANCED)
    sampler = FlexibleBatchSampler(anchors, batch_size=16, seed=1)
    exps = anchors["experiment"].to_numpy()
    chosen = []
    for batch in _batches(sampler, epochs=2):
        assert len(batch) == 16
        assert len(set(exps[batch])) == 1
        chosen.append(exps[batch[0]])
    # 1000 batches, experiment a holds half of the anchors
    assert np.mean(np.array(chosen) == "a") == pytest.approx(0.5, abs=0.06)


def test_experiment_weights_set_choice_frequency():
    anchors = _anchors(BALANCED)
    sampler = FlexibleBatchSampler(anchors, batch_size=16, experiment_weights={"a": 3.0, "b": 1.0}, seed=2)
    exps = anchors["experiment"].to_numpy()
    chosen = np.array([exps[b[0]] for b in _batches(sampler, epochs=2)])
    assert np.mean(chosen == "a") == pytest.approx(0.75, abs=0.06)


def test_condition_balance_is_exact_per_batch_despite_unequal_pools():
    anchors = _anchors(BALANCED)
    conds = anchors["condition"].to_numpy()
    for batch in FlexibleBatchSampler(anchors, batch_size=16, seed=3):
        assert Counter(conds[batch]) == {"inf": 8, "mock": 8}


def test_condition_ratio_sets_expected_share():
    anchors = _anchors(BALANCED)
    conds = anchors["condition"].to_numpy()
    sampler = FlexibleBatchSampler(anchors, batch_size=10, condition_ratio={"inf": 3.0, "mock": 1.0}, seed=4)
    shares = np.array([np.mean(conds[b] == "inf") for b in _batches(sampler)])
    assert set(np.round(shares * 10).astype(int)) <= {7, 8}  # 7.5 rounded down or up
    assert shares.mean() == pytest.approx(0.75, abs=0.01)


def _best_window_fraction(hours: np.ndarray, window: float) -> float:
    """Largest share of ``hours`` inside any [f - window, f + window] with f one of the hours."""
    return max(np.mean(np.abs(hours - f) <= window) for f in np.unique(hours))


def test_temporal_enrichment_focuses_batches_with_global_fraction():
    anchors = _anchors({("a", "inf"): 4000, ("a", "mock"): 4000}, hours=40)
    hpi = anchors["hours_post_infection"].to_numpy()
    conds = anchors["condition"].to_numpy()
    sampler = FlexibleBatchSampler(
        anchors, batch_size=40, temporal_enrichment=True, temporal_window_hours=2.0, temporal_global_fraction=0.25
    )
    fractions = []
    for batch in _batches(sampler):
        fractions.append(_best_window_fraction(hpi[batch], 2.0))
        assert Counter(conds[batch]) == {"inf": 20, "mock": 20}  # condition balance holds inside temporal
    # 30 focal + 10 from outside the focal window; by chance few outside ones land in the best window
    assert min(fractions) >= 0.75
    assert np.mean(fractions) == pytest.approx(0.75 + 0.25 * 5 / 40, abs=0.03)
    # an all-focal batch spans at most two windows
    focal_only = FlexibleBatchSampler(anchors, batch_size=40, temporal_enrichment=True, temporal_global_fraction=0.0)
    for batch in focal_only:
        assert np.ptp(hpi[batch]) <= 4.0
        assert Counter(conds[batch]) == {"inf": 20, "mock": 20}


def test_leaky_fraction_and_condition_balance_inside_leak():
    anchors = _anchors({("a", "inf"): 2000, ("a", "mock"): 2000, ("b", "inf"): 2000, ("b", "mock"): 2000})
    exps, conds = anchors["experiment"].to_numpy(), anchors["condition"].to_numpy()
    sampler = FlexibleBatchSampler(anchors, batch_size=20, leaky=0.25, seed=5)
    leak_shares, leaked_conds = [], []
    for batch in _batches(sampler):
        primary = Counter(exps[batch]).most_common(1)[0][0]
        leaked = np.asarray(batch)[exps[batch] != primary]
        leak_shares.append(len(leaked) / len(batch))
        leaked_conds.extend(conds[leaked])
        assert Counter(conds[batch]) == {"inf": 10, "mock": 10}
    assert set(np.round(np.array(leak_shares) * 20).astype(int)) <= {4, 5, 6}
    assert np.mean(leak_shares) == pytest.approx(0.25, abs=0.01)
    assert np.mean(np.array(leaked_conds) == "inf") == pytest.approx(0.5, abs=0.03)


def test_leaky_with_single_experiment_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="viscy_data.sampler"):
        sampler = FlexibleBatchSampler(_anchors({("a", "x"): 40}), batch_size=8, leaky=0.5)
    assert "no other experiment" in caplog.text
    assert all(len(b) == 8 for b in sampler)


def test_no_duplicates_in_batches_with_all_axes():
    anchors = _anchors(BALANCED, hours=12)
    sampler = FlexibleBatchSampler(
        anchors, batch_size=64, leaky=0.2, temporal_enrichment=True, temporal_window_hours=1.0, seed=6
    )
    for batch in _batches(sampler, epochs=2):
        assert len(batch) == 64 and len(set(batch)) == 64


def test_duplicates_only_from_a_pool_smaller_than_its_demand():
    anchors = _anchors({("a", "inf"): 500, ("a", "mock"): 5})
    conds = anchors["condition"].to_numpy()
    for batch in FlexibleBatchSampler(anchors, batch_size=32, seed=7):
        batch = np.asarray(batch)
        inf, mock = batch[conds[batch] == "inf"], batch[conds[batch] == "mock"]
        assert len(set(inf)) == 16
        assert sorted(Counter(mock.tolist()).values()) == [3, 3, 3, 3, 4]  # 16 draws over 5 anchors


def test_each_anchor_drawn_equally_often_within_its_pool():
    anchors = _anchors({("a", "inf"): 300, ("a", "mock"): 300, ("b", "inf"): 200, ("b", "mock"): 200}, hours=5)
    for temporal in (False, True):
        sampler = FlexibleBatchSampler(anchors, batch_size=20, temporal_enrichment=temporal, seed=8)
        counts = np.bincount(np.concatenate(_batches(sampler)), minlength=len(anchors))
        keys = ["experiment", "condition"] + (["hours_post_infection"] if temporal else [])
        for _, rows in anchors.groupby(keys).indices.items():
            assert np.ptp(counts[rows]) <= 1


def test_ddp_ranks_get_disjoint_interleaved_batches_of_equal_count():
    anchors = _anchors({("a", "x"): 1000})
    single = list(FlexibleBatchSampler(anchors, batch_size=10, seed=9))
    ranks = [list(FlexibleBatchSampler(anchors, batch_size=10, num_replicas=3, rank=r, seed=9)) for r in range(3)]
    assert [len(r) for r in ranks] == [33, 33, 33]
    for r, batches in enumerate(ranks):
        assert batches == single[r:99:3]
    seen = np.concatenate([np.concatenate(b) for b in ranks])
    assert len(np.unique(seen)) == len(seen)


def test_len_matches_yielded_batches_on_every_rank():
    anchors = _anchors({("a", "x"): 20})
    for rank in range(2):
        sampler = FlexibleBatchSampler(anchors, batch_size=6, num_replicas=2, rank=rank)
        assert len(sampler) == len(list(sampler)) == 1
    sampler = FlexibleBatchSampler(anchors, batch_size=6, num_replicas=2, rank=1, drop_last=False)
    assert len(sampler) == len(list(sampler)) == 2


def test_same_seed_and_epoch_reproduce_and_epochs_advance_without_set_epoch():
    anchors = _anchors(BALANCED, hours=6)
    kwargs = {"batch_size": 16, "leaky": 0.1, "temporal_enrichment": True, "seed": 10}
    first = FlexibleBatchSampler(anchors, **kwargs)
    epoch0, epoch1 = list(first), list(first)
    assert first.epoch == 1 and epoch0 != epoch1
    other = FlexibleBatchSampler(anchors, **kwargs)
    other.set_epoch(1)
    assert list(other) == epoch1
    other.set_epoch(0)
    assert list(other) == epoch0
    assert list(FlexibleBatchSampler(anchors, **{**kwargs, "seed": 11})) != epoch0


def test_drop_last_excludes_experiments_smaller_than_batch(caplog):
    anchors = _anchors({("big", "x"): 100, ("small", "x"): 5})
    exps = anchors["experiment"].to_numpy()
    with caplog.at_level(logging.WARNING, logger="viscy_data.sampler"):
        strict = FlexibleBatchSampler(anchors, batch_size=8, condition_balanced=False)
    assert "'small' has 5 samples" in caplog.text
    assert {exps[b[0]] for b in _batches(strict, epochs=5)} == {"big"}
    loose = FlexibleBatchSampler(anchors, batch_size=8, condition_balanced=False, drop_last=False, seed=1)
    small_batches = [b for b in _batches(loose, epochs=10) if exps[b[0]] == "small"]
    assert small_batches and all(len(b) == 8 and len(set(b)) == 5 for b in small_batches)


def test_indices_are_positions_even_with_a_shifted_index():
    anchors = _anchors({("a", "x"): 30, ("b", "x"): 30})
    anchors.index = anchors.index + 1000
    batches = list(FlexibleBatchSampler(anchors, batch_size=10, condition_balanced=False))
    assert all(0 <= i < 60 for b in batches for i in b)
    assert all(isinstance(i, int) for b in batches for i in b)


def test_all_axes_compose_condition_leak_and_time_in_every_batch():
    # window 0: focal anchors share one hpi value exactly, so the focal hpi is the batch's mode
    anchors = _anchors({("a", "inf"): 2000, ("a", "mock"): 2000, ("b", "inf"): 2000, ("b", "mock"): 2000}, hours=40)
    exps, conds = anchors["experiment"].to_numpy(), anchors["condition"].to_numpy()
    hpi = anchors["hours_post_infection"].to_numpy()
    sampler = FlexibleBatchSampler(
        anchors,
        batch_size=40,
        leaky=0.25,
        temporal_enrichment=True,
        temporal_window_hours=0.0,
        temporal_global_fraction=0.25,
        seed=12,
    )
    own_focal, leaked_focal = [], []
    for batch in _batches(sampler):
        batch = np.asarray(batch)
        primary = Counter(exps[batch]).most_common(1)[0][0]
        leaked = exps[batch] != primary
        assert Counter(conds[batch]) == {"inf": 20, "mock": 20}
        assert Counter(conds[batch[leaked]]) == {"inf": 5, "mock": 5}  # balance holds inside the leak
        values, counts = np.unique(hpi[batch], return_counts=True)
        focal = values[np.argmax(counts)]
        own_focal.append(np.sum(hpi[batch[~leaked]] == focal))
        leaked_focal.append(np.sum(hpi[batch[leaked]] == focal))
    # 75 % of each part is focal: 22.5 of the 30 own anchors and 7.5 of the 10 leaked ones
    assert np.mean(own_focal) == pytest.approx(22.5, abs=0.3)
    assert np.mean(leaked_focal) == pytest.approx(7.5, abs=0.3)
    assert min(leaked_focal) >= 6


def test_batch_cost_does_not_grow_with_the_number_of_anchors():
    """A batch allocates memory for its own indices only, never an array over all anchors."""
    n = 1_000_000
    anchors = _anchors({("a", "inf"): n // 4, ("a", "mock"): n // 4, ("b", "inf"): n // 4, ("b", "mock"): n // 4})
    anchors["hours_post_infection"] = np.arange(n) % 20 * 1.0
    sampler = FlexibleBatchSampler(anchors, batch_size=64, leaky=0.1, temporal_enrichment=True, seed=13)
    batches = iter(sampler)
    for _ in range(50):  # the epoch start shuffles every pool once (O(N)); later batches must not
        next(batches)
    tracemalloc.start()
    try:
        for _ in range(20):
            next(batches)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024  # one boolean mask over the anchors alone would take 1 MB
