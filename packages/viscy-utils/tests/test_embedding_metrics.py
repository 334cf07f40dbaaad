import anndata as ad
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.spatial.distance import cdist

from viscy_utils.evaluation.clustering import (
    clustering_evaluation,
    knn_accuracy,
    pairwise_distance_matrix,
    rank_nearest_neighbors,
)
from viscy_utils.evaluation.dimensionality_reduction import compute_pca
from viscy_utils.evaluation.distance import calculate_cosine_similarity_cell, compute_track_displacement
from viscy_utils.evaluation.smoothness import compute_embeddings_smoothness, find_distribution_peak


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], 30)
    centers = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], dtype=float)
    return centers[labels] + rng.normal(scale=0.1, size=(90, 3)), labels


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("device", ["cpu", "scipy"])
def test_pairwise_distances_match_scipy(metric, device):
    features = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    expected = cdist(features.astype(np.float64), features.astype(np.float64), metric=metric)
    np.testing.assert_allclose(pairwise_distance_matrix(features, metric, device=device), expected, atol=1e-10)


def test_pairwise_distances_reject_unknown_device():
    with pytest.raises(ValueError, match="Invalid device: 'tpu'"):
        pairwise_distance_matrix(np.zeros((2, 2)), device="tpu")


def test_rank_nearest_neighbors_puts_self_first_and_farthest_last():
    points = np.array([[0.0], [1.0], [3.0]])
    ranks = rank_nearest_neighbors(cdist(points, points))
    np.testing.assert_allclose(ranks, [[0, 0.5, 1], [0.5, 0, 1], [1, 0.5, 0]])


def test_separated_clusters_score_high():
    features, labels = _blobs()
    assert knn_accuracy(features, labels, k=5) == 1.0
    assert clustering_evaluation(features, labels, method="ari") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="Invalid method"):
        clustering_evaluation(features, labels, method="purity")


def test_pca_dataframe_has_component_columns():
    features, _ = _blobs()
    projection, frame = compute_pca(features, n_components=2)
    assert projection.shape == (90, 2)
    assert list(frame.columns) == ["PC1", "PC2"]
    assert projection[:, 0].var() >= projection[:, 1].var()


def _track_dataset() -> xr.Dataset:
    # one track whose embedding rotates by 30 degrees per frame; stored out of time order
    t = np.array([2, 0, 1, 3])
    angle = np.deg2rad(30 * t)
    features = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    coords = {"fov_name": ("sample", ["/A/1/0"] * 4), "track_id": ("sample", [7] * 4), "t": ("sample", t)}
    return xr.Dataset({"features": (("sample", "features"), features)}, coords=coords)


def test_cosine_similarity_to_first_frame():
    times, similarity = calculate_cosine_similarity_cell(_track_dataset(), "A/1/0", 7)
    np.testing.assert_array_equal(times, [0, 1, 2, 3])
    np.testing.assert_allclose(similarity, np.cos(np.deg2rad([0, 30, 60, 90])), atol=1e-12)


def test_track_displacement_grouped_by_lag():
    displacement = compute_track_displacement(_track_dataset(), distance_metric="cosine")
    assert list(displacement) == [1, 2, 3]
    np.testing.assert_allclose(displacement[1], [1 - np.cos(np.deg2rad(30))] * 3)
    np.testing.assert_allclose(displacement[3], [1.0], atol=1e-12)


def test_smooth_tracks_have_small_adjacent_distances():
    rng = np.random.default_rng(0)
    n_tracks, n_frames = 20, 10
    start = rng.normal(size=(n_tracks, 1, 8)) * 5
    walk = np.cumsum(rng.normal(scale=0.1, size=(n_tracks, n_frames, 8)), axis=1)
    obs = pd.DataFrame(
        {
            "fov_name": "A/1/0",
            "track_id": np.repeat(np.arange(n_tracks), n_frames),
            "t": np.tile(np.arange(n_frames), n_tracks),
        }
    )
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(X=(start + walk).reshape(-1, 8), obs=obs)
    stats, distributions, per_track = compute_embeddings_smoothness(adata, distance_metric="euclidean")
    assert len(per_track) == n_tracks and all(len(d) == n_frames - 1 for d in per_track)
    assert distributions["adjacent_frame_distribution"].size == n_tracks * (n_frames - 1)
    assert distributions["random_frame_distribution"].size == n_tracks * (n_frames - 1)
    assert stats["smoothness_score"] < 0.2
    assert stats["dynamic_range"] > 0


@pytest.mark.parametrize("method", ["histogram", "kde_robust"])
def test_distribution_peak_finds_the_main_mode(method):
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(2.0, 0.2, 2000), rng.normal(6.0, 0.5, 300)])
    assert find_distribution_peak(data, method=method) == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ValueError, match="Unknown method"):
        find_distribution_peak(data, method="mean")
