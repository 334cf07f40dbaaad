"""The example configs: every class resolves, and each one parses with LightningCLI once TODOs are filled."""

from __future__ import annotations

import importlib

import pytest
import yaml
from _config_helpers import class_paths, fill_todos, load_example, todo_strings, write_yaml
from dynaclr_testing import CONFIG_DIR, write_triplet_plate

from dynaclr.cli import run_lightning_cli

LIGHTNING_CONFIGS = {"fit.yml": "fit", "multi_experiment_fit.yml": "fit", "predict.yml": "predict"}


def test_the_documented_example_files_exist():
    names = {path.name for path in CONFIG_DIR.iterdir()}
    expected = {"experiments.yml", "fit.yml", "multi_experiment_fit.yml", "predict.yml", "export_onnx.yml"}
    assert expected | {"fit_slurm.sh", "predict_slurm.sh"} <= names


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.yml") if p.name != "experiments.yml"))
def test_every_class_path_resolves(name):
    paths = class_paths(load_example(name))
    assert paths, f"{name} names no class"
    for class_path in paths:
        module_name, _, attribute = class_path.rpartition(".")
        assert hasattr(importlib.import_module(module_name), attribute), class_path


@pytest.mark.parametrize("name", sorted(LIGHTNING_CONFIGS))
def test_config_parses_with_lightning_cli(name, tmp_path, capsys):
    config = fill_todos(load_example(name), tmp_path)
    assert not todo_strings(config)
    path = write_yaml(tmp_path / name, config)
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(LIGHTNING_CONFIGS[name], ["-c", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "dynaclr.engine.ContrastiveModule"
    assert printed["model"]["init_args"]["encoder"]["init_args"]["projection_dim"] == 32
    assert printed["data"]["class_path"] == config["data"]["class_path"]
    assert printed["data"]["init_args"]["z_range"] == [15, 45]


def test_export_config_parses_with_the_viscy_export_command(tmp_path, capsys):
    from lightning.pytorch import LightningModule

    from viscy_utils.cli import VisCyCLI
    from viscy_utils.trainer import VisCyTrainer

    path = write_yaml(tmp_path / "export_onnx.yml", fill_todos(load_example("export_onnx.yml"), tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        VisCyCLI(
            model_class=LightningModule,
            datamodule_class=None,
            trainer_class=VisCyTrainer,
            subclass_mode_model=True,
            args=["export", "-c", str(path), "--print_config"],
        )
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["format"] == "onnx"
    assert printed["model"]["init_args"]["example_input_array_shape"] == [1, 1, 1, 256, 256]


def test_multi_experiment_config_samples_along_every_axis_without_distributed_sampler():
    config = load_example("multi_experiment_fit.yml")
    assert config["trainer"]["use_distributed_sampler"] is False
    assert config["model"]["init_args"]["loss_function"]["class_path"] == "dynaclr.loss.NTXentHCL"
    data = config["data"]["init_args"]
    assert data["experiment_aware"] and data["condition_balanced"] and data["temporal_enrichment"]
    assert {"leaky", "temporal_window_hours", "temporal_global_fraction", "tau_range", "tau_decay_rate"} <= set(data)


def test_experiments_yaml_builds_a_registry_when_its_plates_exist(tmp_path):
    from dynaclr.experiment import ExperimentRegistry

    config = load_example("experiments.yml")
    for entry in config["experiments"]:
        wells = [well for wells in entry["condition_wells"].values() for well in wells]
        positions = tuple(f"{well}/0" for well in wells)  # the plate has every well the YAML names
        paths = write_triplet_plate(tmp_path / entry["name"], tuple(entry["channel_names"]), positions)
        entry["data_path"], entry["tracks_path"] = str(paths["data_path"]), str(paths["tracks_path"])
    registry = ExperimentRegistry.from_yaml(write_yaml(tmp_path / "experiments.yml", config))
    assert registry.num_source_channels == 2
    assert registry.tau_range_frames("2025_07_22_SEC61", (0.5, 2.0)) == (1, 4)
    assert registry.tau_range_frames("2025_08_15_TOMM20", (0.5, 2.0)) == (2, 8)


def test_slurm_scripts_run_dynaclr_under_srun_with_four_gpus():
    fit = (CONFIG_DIR / "fit_slurm.sh").read_text()
    assert "#SBATCH --gres=gpu:4" in fit and "#SBATCH --ntasks-per-node=4" in fit
    assert "srun" in fit and "dynaclr fit -c" in fit
    predict = (CONFIG_DIR / "predict_slurm.sh").read_text()
    assert "#SBATCH --gres=gpu:1" in predict
    assert "srun" in predict and "dynaclr predict -c" in predict


_TWO_NODES = {"SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS_PER_NODE": "4"}


@pytest.mark.parametrize(
    ("script", "subcommand", "allocation", "expected_options"),
    [
        ("fit_slurm.sh", "fit", {}, "--trainer.num_nodes 1 --trainer.devices 4"),
        ("predict_slurm.sh", "predict", {}, "--trainer.num_nodes 1 --trainer.devices 1"),
        ("fit_slurm.sh", "fit", _TWO_NODES, "--trainer.num_nodes 2 --trainer.devices 4"),
        ("predict_slurm.sh", "predict", _TWO_NODES, "--trainer.num_nodes 2 --trainer.devices 4"),
        (
            "fit_slurm.sh",
            "fit",
            {"CKPT_PATH": "/ck/last.ckpt"},
            "--trainer.num_nodes 1 --trainer.devices 4 --ckpt_path /ck/last.ckpt",
        ),
    ],
)
def test_slurm_script_launches_the_dynaclr_subcommand_through_srun(
    script, subcommand, allocation, expected_options, tmp_path
):
    """Run the script with stand-in ``srun``/``scontrol`` that record what SLURM would have been asked to run.

    ``trainer.num_nodes`` and ``trainer.devices`` follow the allocation (``--nodes``, ``--ntasks-per-node``).
    """
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\necho "srun $*" >> "$SRUN_LOG"\n')
    (bin_dir / "scontrol").write_text("#!/bin/bash\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "srun.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_") and key != "CKPT_PATH"}
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", SRUN_LOG=str(log), WORKSPACE_DIR="/ws", **allocation)
    result = subprocess.run(
        ["bash", str(CONFIG_DIR / script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    expected = (
        f"srun uv run --project /ws --package dynaclr dynaclr {subcommand} -c ./{subcommand}.yml {expected_options}"
    )
    assert log.read_text().splitlines() == [expected]
    assert (tmp_path / "slurm_logs").is_dir()


def test_linear_classifier_example_configs_validate_once_their_files_exist(tmp_path):
    from viscy_utils.evaluation.linear_classifier_config import (
        LinearClassifierInferenceConfig,
        LinearClassifierTrainConfig,
    )

    folder = CONFIG_DIR.parents[1] / "evaluation" / "linear_classifiers" / "configs"
    train = fill_todos(yaml.safe_load((folder / "example_linear_classifier_train.yaml").read_text()), tmp_path)
    for dataset in train["train_datasets"]:
        for key in ("embeddings", "annotations"):
            path = tmp_path / dataset[key]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    assert LinearClassifierTrainConfig(**train).task == "infection_state"
    apply = fill_todos(yaml.safe_load((folder / "example_linear_classifier_inference.yaml").read_text()), tmp_path)
    (tmp_path / apply["embeddings_path"]).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / apply["embeddings_path"]).touch()
    assert LinearClassifierInferenceConfig(**apply).version == "latest"
