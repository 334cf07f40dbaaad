import subprocess
import sys
from pathlib import Path

from iohub.ngff import open_ome_zarr

from viscy_data.testing import write_hcs_plate
from viscy_utils.cli import VisCyCLI, _subcommand

EXTRA_SUBCOMMANDS = ["preprocess", "export", "precompute", "convert_to_anndata"]


def _viscy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("viscy")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "viscy_utils.cli"]
    # a cold start imports torch and lightning: allow for a busy machine
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_subcommands_extend_lightning_ones():
    subcommands = VisCyCLI.subcommands()
    assert list(subcommands) == ["fit", "validate", "test", "predict", *EXTRA_SUBCOMMANDS]
    assert all(subcommands[name] == {"model"} for name in EXTRA_SUBCOMMANDS)


def test_subcommand_is_the_first_token_naming_one():
    assert _subcommand(["predict", "--data.init_args.data_path", "preprocess"]) == "predict"
    assert _subcommand(["--help"]) is None


def test_help_lists_all_subcommands(tmp_path):
    result = _viscy("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "{fit,validate,test,predict,preprocess,export,precompute,convert_to_anndata}" in result.stdout
    assert "Computer vision models for single-cell phenotyping." in result.stdout
    assert "Compute dataset statistics for normalization." in result.stdout
    assert "Convert an xarray dataset to an anndata dataset." in result.stdout


def test_preprocess_subcommand_writes_statistics(tmp_path):
    plate = tmp_path / "plate.zarr"
    write_hcs_plate(plate, channel_names=("Phase3D", "GFP"), normalization=False)
    result = _viscy(
        "preprocess", "--data_path", str(plate), "--channel_names", "[GFP]", "--block_size", "4", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open_ome_zarr(plate, layout="hcs", mode="r") as dataset:
        assert list(dataset.zattrs["normalization"]) == ["GFP"]
        for _, position in dataset.positions():
            assert set(position.zattrs["normalization"]["GFP"]) == {
                "dataset_statistics",
                "fov_statistics",
                "timepoint_statistics",
            }


def test_log_level_applies_to_lightning_and_the_workspace_package_loggers(monkeypatch):
    import logging

    from viscy_utils.cli import _setup_environment

    names = ["lightning.pytorch", "viscy_data", "viscy_utils", "dynaclr"]
    for name in names:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    monkeypatch.setenv("VISCY_LOG_LEVEL", "WARNING")
    _setup_environment()
    assert [logging.getLogger(name).level for name in names] == [logging.WARNING] * len(names)
    assert not logging.getLogger("viscy_data.hcs").isEnabledFor(logging.INFO)
