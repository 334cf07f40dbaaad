"""Online embedding metrics: collapse detection, smoothness along tracks, label read-outs by FOV."""

import numpy as np
import pytest

from viscy_utils.evaluation.online_metrics import (
    effective_rank,
    fov_split,
    linear_probe_accuracy,
    temporal_smoothness,
    weighted_knn_accuracy,
)


def test_effective_rank_of_isotropic_gaussian_is_close_to_the_dimension():
    features = np.random.default_rng(0).normal(size=(4000, 32))
    assert 30.0 < effective_rank(features) <= 32.0


def test_effective_rank_of_a_rank_one_matrix_is_close_to_one():
    rng = np.random.default_rng(0)
    collapsed = rng.normal(size=(500, 1)) @ rng.normal(size=(1, 64))
    assert effective_rank(collapsed) == pytest.approx(1.0, abs=1e-3)


def test_effective_rank_rejects_a_vector():
    with pytest.raises(ValueError, match="n_samples, n_features"):
        effective_rank(np.ones(5))


def _drifting_tracks(n_tracks=40, n_frames=20, seed=0):
    """Each track starts at a random point and drifts in a random direction: distance grows with time."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(n_tracks, 1, 16))
    direction = rng.normal(size=(n_tracks, 1, 16))
    t = np.arange(n_frames)[None, :, None]
    features = (start + 0.3 * direction * t + 0.05 * rng.normal(size=(n_tracks, n_frames, 16))).reshape(-1, 16)
    tracks = np.repeat(np.arange(n_tracks), n_frames)
    times = np.tile(np.arange(n_frames), n_tracks)
    return features, tracks, times


def test_embeddings_drifting_along_tracks_are_smooth():
    features, tracks, times = _drifting_tracks()
    result = temporal_smoothness(features, tracks, times, n_pairs=5000, seed=1)
    assert result.spearman > 0.6
    assert result.adjacent_to_random_ratio < 0.5
    assert result.n_pairs == 5000


def test_shuffled_embeddings_have_no_temporal_structure():
    features, tracks, times = _drifting_tracks()
    shuffled = features[np.random.default_rng(2).permutation(len(features))]
    result = temporal_smoothness(shuffled, tracks, times, n_pairs=5000, seed=1)
    assert abs(result.spearman) < 0.05  # 5000 pairs: the null's standard deviation is about 0.014
    assert result.adjacent_to_random_ratio == pytest.approx(1.0, abs=0.1)


def test_smoothness_is_seeded_and_nan_without_multi_frame_tracks():
    features, tracks, times = _drifting_tracks()
    assert temporal_smoothness(features, tracks, times, seed=3) == temporal_smoothness(features, tracks, times, seed=3)
    single = temporal_smoothness(features[:5], np.arange(5), np.zeros(5))
    assert np.isnan(single.spearman) and single.n_pairs == 0


def test_fov_split_keeps_each_fov_on_one_side():
    fovs = np.repeat([f"A/1/{i}" for i in range(10)], 7)
    test = fov_split(fovs, test_fraction=0.3, seed=0)
    assert len(set(fovs[test])) == 3
    assert not set(fovs[test]) & set(fovs[~test])
    with pytest.raises(ValueError, match="at least 2 FOVs"):
        fov_split(["A/1/0"] * 3)


def _labelled(n=600, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    fovs = np.array([f"A/1/{i}" for i in rng.integers(0, 6, n)])
    separable = rng.normal(size=(n, 8))
    separable[:, 0] += np.where(labels == 1, 5.0, -5.0)  # opposite directions, as cosine k-NN needs
    return separable, labels, fovs


def test_knn_and_probe_read_separable_labels_on_held_out_fovs():
    features, labels, fovs = _labelled()
    test = fov_split(fovs)
    split = (features[~test], labels[~test], features[test], labels[test])
    assert weighted_knn_accuracy(*split, k=20, temperature=0.07) == 1.0
    assert linear_probe_accuracy(*split) == 1.0


def test_knn_and_probe_are_at_chance_on_random_labels():
    features, _, fovs = _labelled()
    labels = np.random.default_rng(5).integers(0, 2, len(features))
    test = fov_split(fovs)
    split = (features[~test], labels[~test], features[test], labels[test])
    # ~200 test cells: chance is 0.5 +- 0.035
    assert abs(weighted_knn_accuracy(*split) - 0.5) < 0.12
    assert abs(linear_probe_accuracy(*split) - 0.5) < 0.12


def test_knn_votes_are_weighted_by_similarity():
    # one close neighbour of class 1 outweighs two far neighbours of class 0 at a low temperature
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    query = np.array([[1.0, 0.05]])
    assert weighted_knn_accuracy(bank, [1, 0, 0], query, [1], k=3, temperature=0.07) == 1.0
    assert weighted_knn_accuracy(bank, [1, 0, 0], query, [1], k=3, temperature=100.0) == 0.0
