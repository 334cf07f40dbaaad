import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr

from viscy_data.io import PositionArrays
from viscy_data.patches import PatchReader
from viscy_data.testing import write_hcs_plate

pytest.importorskip("tensorstore")

POSITIONS = ["A/1/0", "B/2/1"]


class CountingArrays(PositionArrays):
    """The real reader, counting its batched reads."""

    calls = 0

    def read(self, regions):
        self.calls += 1
        return super().read(regions)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    path = tmp_path_factory.mktemp("patches") / "plate.zarr"
    written = write_hcs_plate(
        path, positions=POSITIONS, channel_names=["Phase3D", "GFP", "RFP"], shape=(3, 4, 24, 20), dtype=np.uint16
    )
    plate = open_ome_zarr(path, mode="r", layout="hcs")
    return [plate[name] for name in POSITIONS], written


def test_reads_every_row_in_one_call_with_its_positions_channels(plate):
    positions, written = plate
    arrays = CountingArrays(positions, "0")
    channels = [[2, 0], [1, 0]]  # per position: RFP, Phase3D / GFP, Phase3D
    reader = PatchReader(arrays, channels, z_range=slice(1, 3), yx_patch_size=(6, 5))
    position, t, y0, x0 = np.array([1, 0, 1]), np.array([2, 0, 1]), np.array([0, 18, 7]), np.array([15, 3, 0])
    patches = reader.read(position, t, y0, x0)
    assert arrays.calls == 1
    assert patches.shape == (3, 2, 2, 6, 5) and patches.dtype == torch.uint16
    for i in range(3):
        image = written[POSITIONS[position[i]]]
        expected = image[t[i], channels[position[i]], 1:3, y0[i] : y0[i] + 6, x0[i] : x0[i] + 5]
        np.testing.assert_array_equal(patches[i].numpy(), expected)


def test_channel_lists_must_match_the_positions(plate):
    arrays = PositionArrays(plate[0], "0")
    with pytest.raises(ValueError, match="channel lists for 1 positions but 2 arrays"):
        PatchReader(arrays, [[0]], slice(0, 1), (4, 4))
    with pytest.raises(ValueError, match=r"same number of channels, got \[1, 2\]"):
        PatchReader(arrays, [[0], [0, 1]], slice(0, 1), (4, 4))
