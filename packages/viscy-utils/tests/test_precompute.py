import dask.array as da
import numpy as np
import pytest

from viscy_data.testing import write_hcs_plate
from viscy_utils.precompute import precompute_array

POSITIONS = ("A/1/0", "A/1/1", "B/2/0")


@pytest.fixture
def plate(tmp_path):
    path = tmp_path / "plate.zarr"
    images = write_hcs_plate(path, positions=POSITIONS, channel_names=("Phase3D", "GFP"), shape=(2, 2, 16, 16))
    return path, images


def test_wells_are_normalized_separately(plate, tmp_path):
    path, images = plate
    output = tmp_path / "stack"
    precompute_array(path, output, ["GFP", "Phase3D"], subtrahends=["mean", 50], divisors=["std", [1, 99]])
    stack = da.from_npy_stack(output).compute()
    assert stack.shape == (3, 2, 2, 2, 16, 16) and stack.dtype == np.float16
    well_a = np.stack([images["A/1/0"], images["A/1/1"]]).astype(np.float64)
    gfp = well_a[:, :, 1]
    np.testing.assert_allclose(stack[:2, :, 0], (gfp - gfp.mean()) / gfp.std(), atol=2e-2)
    # percentile normalization is affine; dask's percentiles of chunked data are approximate
    phase = well_a[:, :, 0]
    slope, intercept = np.polyfit(phase.ravel(), stack[:2, :, 1].astype(np.float64).ravel(), 1)
    p1, p50, p99 = np.percentile(phase, [1, 50, 99])
    assert 1 / slope == pytest.approx(p99 - p1, rel=0.05)
    assert -intercept / slope == pytest.approx(p50, abs=0.05 * (p99 - p1))
    gfp_b = images["B/2/0"][:, 1].astype(np.float64)
    np.testing.assert_allclose(stack[2, :, 0], (gfp_b - gfp_b.mean()) / gfp_b.std(), atol=2e-2)


def test_wells_and_fovs_can_be_selected(plate, tmp_path):
    path, images = plate
    output = tmp_path / "stack"
    precompute_array(path, output, ["GFP"], ["mean"], ["std"], include_wells=["A/1"], exclude_fovs=["A/1/0"])
    stack = da.from_npy_stack(output).compute()
    assert stack.shape == (1, 2, 1, 2, 16, 16)
    gfp = images["A/1/1"][:, 1].astype(np.float64)
    np.testing.assert_allclose(stack[0, :, 0], (gfp - gfp.mean()) / gfp.std(), atol=2e-2)


def test_existing_output_is_refused(plate, tmp_path):
    path, _ = plate
    output = tmp_path / "stack"
    output.mkdir()
    with pytest.raises(FileExistsError, match="stack"):
        precompute_array(path, output, ["GFP"], ["mean"], ["std"])


def test_unknown_channel_is_rejected(plate, tmp_path):
    path, _ = plate
    with pytest.raises(ValueError, match=r"\['DAPI'\] are not in"):
        precompute_array(path, tmp_path / "stack", ["DAPI"], ["mean"], ["std"])
    assert not (tmp_path / "stack").exists()


def test_mismatched_normalization_lists_are_rejected(plate, tmp_path):
    path, _ = plate
    with pytest.raises(ValueError, match="same length"):
        precompute_array(path, tmp_path / "stack", ["GFP", "Phase3D"], ["mean"], ["std", "std"])
