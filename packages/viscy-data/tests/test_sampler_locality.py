"""``FlexibleBatchSampler(group_by_fov_fraction=...)``: batches concentrated on a few image frames."""

import pandas as pd
import pytest

from viscy_data.sampler import FlexibleBatchSampler


def _anchors(cells_per_frame: int = 3) -> pd.DataFrame:
    """2 experiments x 3 FOVs x 4 time points x ``cells_per_frame`` cells; FOV 1 of each is infected."""
    rows = []
    for e, experiment in enumerate(["exp_a", "exp_b"]):
        for f in range(3):
            for t in range(4):
                for _ in range(cells_per_frame):
                    rows.append((experiment, ["mock", "infected"][f % 2], f"A/{e + 1}/{f}", t, t * 0.5))
    return pd.DataFrame(rows, columns=["experiment", "condition", "fov_name", "t", "hours_post_infection"])


def _batches(sampler, n):
    return [batch for _, batch in zip(range(n), iter(sampler), strict=False)]


# Batches of the sampler before group_by_fov_fraction existed (same anchors and settings).
_BEFORE_DEFAULT = [
    [59, 51, 48, 56, 39, 67, 60, 47],
    [12, 16, 21, 19, 8, 28, 31, 34],
    [53, 54, 50, 49, 65, 43, 41, 37],
    [13, 22, 17, 18, 4, 7, 10, 11],
]
_BEFORE_LEAKY_TEMPORAL = [
    [16, 15, 23, 52, 25, 4, 10, 36],
    [19, 54, 32, 34, 35, 63, 17, 16],
    [50, 51, 59, 14, 38, 39, 67, 29],
    [12, 13, 20, 49, 0, 26, 33, 41],
]


def test_default_batches_are_unchanged():
    assert _batches(FlexibleBatchSampler(_anchors(), batch_size=8, seed=3), 4) == _BEFORE_DEFAULT
    sampler = FlexibleBatchSampler(
        _anchors(), batch_size=8, seed=5, leaky=0.25, temporal_enrichment=True, temporal_window_hours=0.5
    )
    assert _batches(sampler, 4) == _BEFORE_LEAKY_TEMPORAL


def _frames(anchors, batch):
    rows = anchors.iloc[batch]
    return list(zip(rows["experiment"], rows["fov_name"], rows["t"], strict=True))


def test_grouped_fraction_comes_from_at_most_the_requested_frames():
    anchors = _anchors(cells_per_frame=20)
    sampler = FlexibleBatchSampler(
        anchors, batch_size=32, seed=0, group_by_fov_fraction=0.5, group_by_fov_frames=2, condition_balanced=False
    )
    plain = FlexibleBatchSampler(anchors, batch_size=32, seed=0, condition_balanced=False)
    for grouped, ungrouped in zip(_batches(sampler, 10), _batches(plain, 10), strict=True):
        assert len(grouped) == 32 and len(set(grouped)) == 32
        top_two = pd.Series(_frames(anchors, grouped)).value_counts().iloc[:2].sum()
        assert top_two >= 16
        assert pd.Series(_frames(anchors, ungrouped)).value_counts().iloc[:2].sum() < 16
        assert len(set(anchors.iloc[grouped]["experiment"])) == 1  # experiment-aware batches stay so


def test_frames_too_small_for_the_grouped_part_keep_the_batch_size():
    anchors = _anchors(cells_per_frame=1)
    sampler = FlexibleBatchSampler(anchors, batch_size=8, seed=1, group_by_fov_fraction=1.0, group_by_fov_frames=1)
    for batch in _batches(sampler, 5):
        assert len(batch) == 8 and len(set(batch)) == 8


def test_grouping_is_deterministic_per_seed_and_epoch():
    def make():
        return FlexibleBatchSampler(_anchors(10), batch_size=16, seed=4, group_by_fov_fraction=0.75)

    assert _batches(make(), 3) == _batches(make(), 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group_by_fov_fraction": 1.5}, r"group_by_fov_fraction must be in \[0, 1\]"),
        ({"group_by_fov_fraction": 0.5, "group_by_fov_frames": 0}, "group_by_fov_frames must be a positive"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlexibleBatchSampler(_anchors(), batch_size=8, **kwargs)


def test_grouping_needs_fov_name_and_t_columns():
    with pytest.raises(ValueError, match="requires 'fov_name' column"):
        FlexibleBatchSampler(_anchors().drop(columns="fov_name"), batch_size=8, group_by_fov_fraction=0.5)
    assert len(FlexibleBatchSampler(_anchors().drop(columns="fov_name"), batch_size=8)) > 0  # fine when off
