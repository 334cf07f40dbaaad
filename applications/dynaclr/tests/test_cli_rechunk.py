import numpy as np
from click.testing import CliRunner
from iohub.ngff import open_ome_zarr

from dynaclr.cli import dynaclr
from viscy_data.testing import write_hcs_plate


def test_rechunk_command_writes_a_verified_patch_chunked_copy(tmp_path):
    source, target = tmp_path / "plate.zarr", tmp_path / "patches.zarr"
    written = write_hcs_plate(source, positions=["A/1/0"], shape=(2, 1, 32, 32), dtype=np.uint16, version="0.5")
    result = CliRunner().invoke(dynaclr, ["rechunk", str(source), str(target), "--chunks", "1", "1", "1", "16", "16"])
    assert result.exit_code == 0, result.output
    with open_ome_zarr(target, mode="r", layout="hcs") as copy:
        array = copy["A/1/0"]["0"]
        assert (array.chunks, array.shards) == ((1, 1, 1, 16, 16), (1, 1, 1, 32, 32))
        np.testing.assert_array_equal(array[:], written["A/1/0"])


def test_rechunk_command_refuses_an_existing_target(tmp_path):
    source = tmp_path / "plate.zarr"
    write_hcs_plate(source, positions=["A/1/0"], shape=(1, 1, 16, 16), version="0.4")
    result = CliRunner().invoke(dynaclr, ["rechunk", str(source), str(source)])
    assert result.exit_code != 0
    assert "already exists" in str(result.exception)
