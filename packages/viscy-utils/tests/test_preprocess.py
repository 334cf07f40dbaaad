import numpy as np
import pytest
from iohub.ngff import open_ome_zarr

from viscy_data.testing import channel_statistics, write_hcs_plate
from viscy_utils.meta_utils import generate_normalization_metadata, write_meta_field
from viscy_utils.trainer import VisCyTrainer

POSITIONS = ("A/1/0", "A/1/1", "B/2/0")
CHANNELS = ("Phase3D", "GFP")
GRID = 8


@pytest.fixture(params=["0.4", "0.5"], ids=["zarr_v2", "zarr_v3"])
def plate(tmp_path, request):
    path = tmp_path / "plate.zarr"
    images = write_hcs_plate(
        path,
        positions=POSITIONS,
        channel_names=CHANNELS,
        shape=(3, 2, 32, 32),
        normalization=False,
        version=request.param,
    )
    return path, images


def _grid(image: np.ndarray, channel: int) -> np.ndarray:
    return image[:, channel, :, ::GRID, ::GRID]


def _assert_stats_match(stored: dict, values: np.ndarray) -> None:
    expected = channel_statistics(values)
    assert set(stored) == set(expected)
    for key, value in expected.items():
        assert stored[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def test_statistics_match_numpy_on_the_sampled_grid(plate):
    path, images = plate
    generate_normalization_metadata(path, num_workers=2, grid_spacing=GRID)
    with open_ome_zarr(path, layout="hcs", mode="r") as dataset:
        plate_meta = dataset.zattrs["normalization"]
        for c, channel in enumerate(CHANNELS):
            samples = np.stack([_grid(images[name], c) for name in POSITIONS])  # (P, T, Z, y, x)
            assert set(plate_meta[channel]) == {"dataset_statistics", "timepoint_statistics"}
            _assert_stats_match(plate_meta[channel]["dataset_statistics"], samples)
            assert sorted(plate_meta[channel]["timepoint_statistics"]) == ["0", "1", "2"]
            for t in range(3):
                _assert_stats_match(plate_meta[channel]["timepoint_statistics"][str(t)], samples[:, t])
            for name, position in dataset.positions():
                meta = position.zattrs["normalization"][channel]
                assert set(meta) == {"dataset_statistics", "fov_statistics", "timepoint_statistics"}
                _assert_stats_match(meta["fov_statistics"], _grid(images[name], c))
                assert meta["dataset_statistics"] == plate_meta[channel]["dataset_statistics"]
                assert meta["timepoint_statistics"] == plate_meta[channel]["timepoint_statistics"]


def test_preprocess_selected_channel_keeps_other_metadata(plate):
    path, images = plate
    with open_ome_zarr(path, layout="hcs", mode="r+") as dataset:
        dataset.zattrs["normalization"] = {"Phase3D": {"custom": {"mean": 1.0}}}
    VisCyTrainer(logger=False).preprocess(path, channel_names=["GFP"], block_size=GRID)
    with open_ome_zarr(path, layout="hcs", mode="r") as dataset:
        meta = dataset.zattrs["normalization"]
        assert meta["Phase3D"] == {"custom": {"mean": 1.0}}
        gfp = np.stack([_grid(images[name], 1) for name in POSITIONS])
        _assert_stats_match(meta["GFP"]["dataset_statistics"], gfp)


def test_preprocess_unknown_channel_fails_before_writing(plate):
    path, _ = plate
    with pytest.raises(ValueError, match=r"\['DAPI'\].*available channels: \['Phase3D', 'GFP'\]"):
        VisCyTrainer(logger=False).preprocess(path, channel_names=["GFP", "DAPI"])
    with open_ome_zarr(path, layout="hcs", mode="r") as dataset:
        assert "normalization" not in dataset.zattrs
        assert all("normalization" not in position.zattrs for _, position in dataset.positions())


def test_out_of_range_channel_index_is_rejected(plate):
    path, _ = plate
    with pytest.raises(ValueError, match=r"Channel indices \[5\] are out of range"):
        generate_normalization_metadata(path, channel_ids=[5])


def test_write_meta_field_merges_subfields(plate):
    path, _ = plate
    with open_ome_zarr(path, layout="hcs", mode="r+") as dataset:
        position = dataset["A/1/0"]
        write_meta_field(position, {"a": 1, "b": 2}, "normalization", "GFP")
        write_meta_field(position, {"b": 3}, "normalization", "GFP")
        write_meta_field(position, {"c": 4}, "normalization", "Phase3D")
    with open_ome_zarr(path, layout="hcs", mode="r") as dataset:
        assert dataset["A/1/0"].zattrs["normalization"] == {"GFP": {"a": 1, "b": 3}, "Phase3D": {"c": 4}}


def test_positions_are_read_in_parallel(plate, monkeypatch):
    """Two positions must be read at the same time: a 2-party barrier breaks if reads run one by one."""
    import threading

    from viscy_utils import meta_utils

    path, images = plate
    read_position = meta_utils._grid_sample
    barrier = threading.Barrier(2, timeout=20)
    first_two = threading.Semaphore(2)

    def read_together(position, *args):
        if first_two.acquire(blocking=False):
            barrier.wait()  # raises BrokenBarrierError when no second reader arrives
        return read_position(position, *args)

    monkeypatch.setattr(meta_utils, "_grid_sample", read_together)
    generate_normalization_metadata(path, num_workers=2, channel_ids=[0], grid_spacing=GRID)
    with open_ome_zarr(path, layout="hcs", mode="r") as dataset:
        samples = np.stack([_grid(images[name], 0) for name in POSITIONS])
        _assert_stats_match(dataset.zattrs["normalization"]["Phase3D"]["dataset_statistics"], samples)
