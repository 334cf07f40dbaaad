import hashlib

import numpy as np
import pytest
from iohub.ngff import open_ome_zarr

from viscy_data.io import PositionArrays
from viscy_data.rechunk import rechunk_plate
from viscy_data.testing import write_hcs_plate

POSITIONS = ["A/1/0", "B/2/1"]
SHAPE = (3, 2, 40, 48)  # T, Z, Y, X; 48 is not a multiple of the 32 px chunks


def _digest(root) -> dict[str, str]:
    """Content hash of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(params=["0.4", "0.5"])
def plate(tmp_path, request):
    path = tmp_path / "plate.zarr"
    written = write_hcs_plate(path, positions=POSITIONS, shape=SHAPE, dtype=np.uint16, version=request.param)
    return path, written, request.param


def test_copy_has_patch_chunks_and_the_same_pixels(plate, tmp_path):
    path, written, version = plate
    target = rechunk_plate(path, tmp_path / "patches.zarr", chunks=(1, 1, 1, 32, 32))
    with open_ome_zarr(target, mode="r", layout="hcs") as copy:
        assert copy.version == version
        for name, position in copy.positions():
            array = position["0"]
            assert array.chunks == (1, 1, 1, 32, 32)
            np.testing.assert_array_equal(array[:], written[name])


def test_ome_zarr_05_copy_has_one_shard_per_frame(tmp_path):
    path = tmp_path / "plate.zarr"
    write_hcs_plate(path, positions=POSITIONS, shape=SHAPE, dtype=np.uint16, version="0.5")
    target = rechunk_plate(path, tmp_path / "patches.zarr", chunks=(1, 1, 1, 32, 32))
    with open_ome_zarr(target, mode="r", layout="hcs") as copy:
        array = copy["A/1/0"]["0"]
        assert array.shards == (1, 1, 1, 64, 64)  # one shard covers the whole 40 x 48 frame


def test_channels_transforms_and_normalization_are_copied(plate, tmp_path):
    path, _, _ = plate
    with open_ome_zarr(path, mode="r+", layout="hcs") as source:
        source["A/1/0"].set_transform("0", [{"type": "scale", "scale": [1.0, 1.0, 2.0, 0.5, 0.5]}])
    target = rechunk_plate(path, tmp_path / "patches.zarr", chunks=(1, 1, 1, 16, 16))
    with open_ome_zarr(path, mode="r", layout="hcs") as source, open_ome_zarr(target, mode="r", layout="hcs") as copy:
        assert copy.channel_names == source.channel_names == ["Phase3D", "GFP"]
        assert copy.zattrs["normalization"] == source.zattrs["normalization"]
        for name, position in source.positions():
            assert copy[name].zattrs["normalization"] == position.zattrs["normalization"]
        assert copy["A/1/0"].scale == [1.0, 1.0, 2.0, 0.5, 0.5]


def test_source_is_never_modified(plate, tmp_path):
    path, _, _ = plate
    before = _digest(path)
    rechunk_plate(path, tmp_path / "patches.zarr", chunks=(1, 1, 1, 16, 16))
    assert _digest(path) == before


def test_existing_target_is_refused_and_left_alone(plate, tmp_path):
    path, _, _ = plate
    target = tmp_path / "taken.zarr"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken.zarr"):
        rechunk_plate(path, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("chunks", [(1, 1, 256, 256), (1, 1, 1, 0, 256)])
def test_bad_chunks_are_refused_before_writing(plate, tmp_path, chunks):
    path, _, _ = plate
    with pytest.raises(ValueError, match="chunks must be 5 positive integers"):
        rechunk_plate(path, tmp_path / "patches.zarr", chunks=chunks)
    assert not (tmp_path / "patches.zarr").exists()


def test_readers_give_the_same_patches_from_both_layouts(plate, tmp_path):
    path, written, _ = plate
    target = rechunk_plate(path, tmp_path / "patches.zarr", chunks=(1, 1, 1, 16, 16))
    region = (1, (2, [1, 0], slice(0, 2), slice(5, 25), slice(20, 40)))
    for store in (path, target):
        positions = [p for _, p in open_ome_zarr(store, mode="r", layout="hcs").positions()]
        patch = PositionArrays(positions, "0", 0).read([region])[0]
        np.testing.assert_array_equal(patch, written["B/2/1"][2][[1, 0], 0:2, 5:25, 20:40])
