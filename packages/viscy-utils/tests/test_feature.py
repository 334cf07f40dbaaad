import numpy as np
import pandas as pd
import pytest

from viscy_utils.evaluation.feature import CellFeatures, DynamicFeatures


def _disk(size: int = 64, radius: float = 12.0) -> np.ndarray:
    y, x = np.indices((size, size))
    return (np.hypot(y - size / 2, x - size / 2) <= radius).astype(float)


def test_intensity_features_of_a_disk():
    features = CellFeatures(_disk() * 5 + 1).compute_intensity_features()
    disk = _disk()
    assert features["mean_intensity"] == pytest.approx(disk.mean())
    assert features["min_intensity"] == 0 and features["max_intensity"] == 1
    assert features["iqr"] == pytest.approx(np.subtract(*np.percentile(disk, [75, 25])))
    assert features["skewness"] > 0  # few bright pixels on a dark background


def test_constant_image_has_nan_moments():
    features = CellFeatures(np.full((16, 16), 3.0)).compute_intensity_features()
    assert np.isnan(features["kurtosis"]) and np.isnan(features["skewness"])


def test_texture_separates_noise_from_flat_blocks():
    rng = np.random.default_rng(0)
    noisy = CellFeatures(rng.random((32, 32))).compute_texture_features()
    blocks = CellFeatures(np.kron(rng.random((4, 4)), np.ones((8, 8)))).compute_texture_features()
    assert noisy["contrast"] > 3 * blocks["contrast"]
    assert noisy["entropy"] > blocks["entropy"]
    assert blocks["homogeneity"] > 0.5 > noisy["homogeneity"]


def test_morphology_of_a_disk_mask():
    mask = _disk()
    features = CellFeatures(mask, segmentation_mask=mask).compute_morphology_features()
    assert features["area"] == mask.sum()
    assert features["perimeter"] == pytest.approx(2 * np.pi * 12, rel=0.1)
    assert features["eccentricity"] < 0.1
    assert features["intensity_localization"] == pytest.approx(1.0)


def test_morphology_requires_a_mask():
    with pytest.raises(AssertionError, match="required"):
        CellFeatures(_disk()).compute_morphology_features()
    with pytest.raises(AssertionError, match="empty"):
        CellFeatures(_disk(), segmentation_mask=np.zeros((64, 64))).compute_morphology_features()


def test_symmetry_of_a_centered_disk():
    features = CellFeatures(_disk()).compute_symmetry_descriptor()
    assert features["radial_intensity_gradient"] < 0  # bright centre, dark border
    assert features["zernike_mean"] > 0


def test_all_cell_features_in_one_row():
    frame = CellFeatures(_disk(), segmentation_mask=_disk()).compute_all_features()
    assert frame.shape[0] == 1
    assert {"mean_intensity", "contrast", "area", "zernike_std"} <= set(frame.columns)


def test_dynamic_features_of_a_straight_then_turning_track():
    tracks = pd.DataFrame(
        {"track_id": [1, 1, 1, 2], "t": [0, 1, 2, 0], "x": [0.0, 3.0, 3.0, 5.0], "y": [0.0, 4.0, 8.0, 5.0]}
    )
    frame = DynamicFeatures(tracks).compute_all_features(1)
    row = frame.iloc[0]
    assert row["instantaneous_velocity"] == [0.0, 5.0, 4.0]
    assert row["mean_velocity"] == pytest.approx(4.5)
    assert row["total_distance"] == pytest.approx(9.0)
    assert row["net_displacement"] == pytest.approx(np.hypot(3, 8))
    assert row["directional_persistence"] == pytest.approx(np.hypot(3, 8) / 9)
    assert row["mean_angular_velocity"] == pytest.approx(np.arctan2(3, 4))
    single = DynamicFeatures(tracks).compute_all_features(2).iloc[0]
    assert single["mean_velocity"] == 0 and single["total_distance"] == 0 and single["max_angular_velocity"] == 0


def test_dynamic_features_validate_columns():
    with pytest.raises(ValueError, match=r"Missing required columns: \['y'\]"):
        DynamicFeatures(pd.DataFrame({"track_id": [1], "t": [0], "x": [0]}))
    with pytest.raises(ValueError, match="Column t must be numeric"):
        DynamicFeatures(pd.DataFrame({"track_id": [1], "t": ["a"], "x": [0], "y": [0]}))
