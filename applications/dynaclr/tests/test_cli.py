"""The ``dynaclr`` command line: light help, real fit/predict runs in subprocesses, clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _config_helpers import fill_todos, load_example, write_yaml
from dynaclr_testing import (
    PLATE_POSITIONS,
    PLATE_SHAPE,
    TINY_CONTRASTIVE_ENCODER,
    TINY_EXAMPLE_INPUT_SHAPE,
    TRACKS_PER_FOV,
    write_triplet_plate,
)

from dynaclr.cli import run_lightning_cli

N_CELLS = len(PLATE_POSITIONS) * TRACKS_PER_FOV * PLATE_SHAPE[0]


def _dynaclr(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "dynaclr.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """In-process LightningCLI runs write logs and checkpoints relative to the working directory."""
    monkeypatch.chdir(tmp_path)


def _tiny_model_override() -> dict:
    return {
        "init_args": {
            "encoder": {"init_args": TINY_CONTRASTIVE_ENCODER},
            "example_input_array_shape": TINY_EXAMPLE_INPUT_SHAPE,
        }
    }


def _tiny_data_override(paths: dict[str, Path], **extra) -> dict:
    return {
        "init_args": {
            "data_path": str(paths["data_path"]),
            "tracks_path": str(paths["tracks_path"]),
            "z_range": [0, 1],
            "initial_yx_patch_size": [32, 32],
            "final_yx_patch_size": [32, 32],
            "batch_size": 4,
            "num_workers": 0,
            **extra,
        }
    }


def test_help_is_fast_and_imports_no_deep_learning_stack():
    script = Path(sys.executable).with_name("dynaclr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dynaclr.cli"]
    start = time.perf_counter()
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    for command_name in ("fit", "validate", "test", "predict", "train-linear-classifier", "apply-linear-classifier"):
        assert command_name in result.stdout
    assert elapsed < 3.0, f"dynaclr --help took {elapsed:.1f} s"
    probe = "import sys, dynaclr.cli; print(sorted({'torch', 'lightning', 'sklearn'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]"


_FIT_HELP_PROBE = """
import sys
sys.argv = ["dynaclr", "fit", "--help"]
from dynaclr.cli import main
try:
    main()
finally:
    print("lightning imported:", "lightning" in sys.modules, file=sys.stderr)
"""


def test_fit_help_is_rendered_once_then_answered_without_lightning(tmp_path):
    env = {**os.environ, "VISCY_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "100"}
    runs = [
        subprocess.run([sys.executable, "-c", _FIT_HELP_PROBE], capture_output=True, text=True, timeout=300, env=env)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-4000:]
    first, second = runs
    assert "--trainer.max_epochs" in first.stdout and "--model" in first.stdout
    assert "lightning imported: True" in first.stderr
    assert "lightning imported: False" in second.stderr
    assert len(list((tmp_path / "cache" / "help").iterdir())) == 1
    stamp = r"'\d{8}-\d{6}'"
    assert re.sub(stamp, "T", second.stdout) == re.sub(stamp, "T", first.stdout)


def test_fit_example_config_runs_a_fast_dev_run(tmp_path):
    paths = write_triplet_plate(tmp_path, channel_names=("Phase3D", "raw mCherry EX561 EM600-37"))
    config = write_yaml(tmp_path / "fit.yml", fill_todos(load_example("fit.yml"), tmp_path))
    override = {
        "trainer": {"accelerator": "cpu", "strategy": "auto", "devices": 1, "fast_dev_run": True},
        "model": _tiny_model_override(),
        "data": _tiny_data_override(paths, batch_size=2),
    }
    override_path = write_yaml(tmp_path / "tiny.yml", override)
    result = _dynaclr(["fit", "-c", str(config), "-c", str(override_path)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "fast_dev_run" in result.stderr + result.stdout
    assert "`Trainer.fit` stopped: `max_steps=1` reached" in result.stderr + result.stdout


def test_multi_experiment_example_config_runs_a_fast_dev_run(tmp_path):
    from _multi_experiment_plates import write_two_experiment_plates

    from dynaclr.datamodule import MultiExperimentDataModule
    from dynaclr.loss import NTXentHCL

    plates = write_two_experiment_plates(tmp_path)
    config = write_yaml(tmp_path / "multi.yml", fill_todos(load_example("multi_experiment_fit.yml"), tmp_path))
    data = {
        "experiments_yaml": str(plates["experiments_yaml"]),
        "val_experiments": ["exp_b"],
        "z_range": [0, 1],
        "yx_patch_size": [32, 32],
        "final_yx_patch_size": [32, 32],
        "batch_size": 4,
        "num_workers": 0,
    }
    override = {
        "trainer": {"accelerator": "cpu", "strategy": "auto", "devices": 1, "fast_dev_run": True},
        "model": _tiny_model_override(),
        "data": {"init_args": data},
    }
    cli = run_lightning_cli("fit", ["-c", str(config), "-c", str(write_yaml(tmp_path / "tiny.yml", override))])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert isinstance(cli.model.loss_function, NTXentHCL) and cli.model.loss_function.beta == 0.5
    assert isinstance(cli.datamodule, MultiExperimentDataModule) and cli.datamodule.val_experiments == ["exp_b"]


def _predict_override(paths: dict[str, Path], output_path: Path) -> dict:
    writer = {
        "class_path": "viscy_utils.callbacks.embedding_writer.EmbeddingWriter",
        "init_args": {"output_path": str(output_path), "phate_kwargs": None, "pca_kwargs": {"n_components": 8}},
    }
    return {
        "trainer": {"accelerator": "cpu", "devices": 1, "callbacks": [writer]},
        "model": _tiny_model_override(),
        "data": _tiny_data_override(paths),
        "ckpt_path": str(paths["ckpt_path"]),
    }


def test_predict_example_config_writes_anndata_embeddings(tiny_trained_checkpoint, tmp_path):
    import anndata

    output_path = tmp_path / "embeddings.zarr"
    config = write_yaml(tmp_path / "predict.yml", fill_todos(load_example("predict.yml"), tmp_path))
    override = write_yaml(tmp_path / "tiny.yml", _predict_override(tiny_trained_checkpoint, output_path))
    result = _dynaclr(["predict", "-c", str(config), "-c", str(override)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    adata = anndata.read_zarr(output_path)
    assert adata.X.shape == (N_CELLS, 768)
    assert adata.obsm["X_projections"].shape == (N_CELLS, 32)
    assert adata.obsm["X_pca"].shape == (N_CELLS, 8)
    assert {"fov_name", "track_id", "t", "id"} <= set(adata.obs.columns)
    assert set(adata.obs["fov_name"]) == set(PLATE_POSITIONS)


def test_predict_refuses_an_existing_output_store(tiny_trained_checkpoint, tmp_path):
    output_path = tmp_path / "embeddings.zarr"
    output_path.mkdir()
    marker = output_path / "keep.txt"
    marker.write_text("previous results")
    config = write_yaml(tmp_path / "predict.yml", fill_todos(load_example("predict.yml"), tmp_path))
    override = write_yaml(tmp_path / "tiny.yml", _predict_override(tiny_trained_checkpoint, output_path))
    with pytest.raises(FileExistsError, match="already exists"):
        run_lightning_cli("predict", ["-c", str(config), "-c", str(override)])
    assert [p.name for p in output_path.iterdir()] == ["keep.txt"]
    assert marker.read_text() == "previous results"


def test_config_naming_an_unknown_class_is_rejected(tmp_path, capsys):
    config = fill_todos(load_example("fit.yml"), tmp_path)
    config["model"]["class_path"] = "dynaclr.engine.NoSuchModule"
    path = write_yaml(tmp_path / "bad.yml", config)
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli("fit", ["-c", str(path)])
    assert exit_info.value.code != 0
    assert "NoSuchModule" in capsys.readouterr().err


def test_package_exports_its_names_lazily():
    probe = (
        "import sys, dynaclr\n"
        "print(len(dynaclr.__all__), 'torch' in sys.modules)\n"
        "from dynaclr import ContrastiveModule, NTXentHCL, BetaVaeModule\n"
        "print(ContrastiveModule.__module__, BetaVaeModule.__module__, NTXentHCL.__name__)\n"
        "try:\n    dynaclr.NotAName\nexcept AttributeError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "10 False"
    assert lines[1] == "dynaclr.engine dynaclr.engine NTXentHCL"
    assert "NotAName" in lines[2]


def _annotated_embeddings(root: Path, n_cells: int = 40) -> dict[str, Path]:
    """Separable 4-D embeddings of infected (x0 > 0) and uninfected cells, and their annotations CSV."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    infected = np.arange(n_cells) % 2 == 1
    features = rng.normal(size=(n_cells, 4)).astype(np.float32)
    features[:, 0] = np.where(infected, 3.0, -3.0) + 0.1 * features[:, 0]
    obs = pd.DataFrame({"fov_name": ["A/1/0"] * n_cells, "id": np.arange(n_cells), "t": 0, "track_id": 0})
    obs.index = obs.index.astype(str)
    embeddings = root / "embeddings.zarr"
    ad.AnnData(X=features, obs=obs).write_zarr(embeddings)
    annotations = root / "annotations.csv"
    obs.assign(infection_state=np.where(infected, "infected", "uninfected")).to_csv(annotations, index=False)
    return {"embeddings": embeddings, "annotations": annotations, "infected": infected}


def test_linear_classifier_commands_train_then_apply(tmp_path):
    import anndata as ad
    from click.testing import CliRunner

    from dynaclr.cli import dynaclr

    data = _annotated_embeddings(tmp_path)
    model_dir = tmp_path / "classifiers"
    train_config = {
        "task": "infection_state",
        "input_channel": "phase",
        "embedding_model": "tiny",
        "train_datasets": [{"embeddings": str(data["embeddings"]), "annotations": str(data["annotations"])}],
        "model_dir": str(model_dir),
    }
    runner = CliRunner()
    train_path = write_yaml(tmp_path / "train.yml", train_config)
    trained = runner.invoke(dynaclr, ["train-linear-classifier", "-c", str(train_path)])
    assert trained.exit_code == 0, trained.output
    assert (model_dir / "linear-classifier-infection_state-phase" / "v0").is_dir()
    output = tmp_path / "predicted.zarr"
    apply_config = {
        "model_name": "linear-classifier-infection_state-phase",
        "embeddings_path": str(data["embeddings"]),
        "output_path": str(output),
        "model_dir": str(model_dir),
    }
    apply_path = write_yaml(tmp_path / "apply.yml", apply_config)
    applied = runner.invoke(dynaclr, ["apply-linear-classifier", "-c", str(apply_path)])
    assert applied.exit_code == 0, applied.output
    predicted = ad.read_zarr(output).obs["predicted_infection_state"].astype(str).to_numpy()
    assert (predicted == "infected").tolist() == data["infected"].tolist()


def test_training_without_the_annotation_column_fails_before_any_work(tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from dynaclr.cli import dynaclr

    data = _annotated_embeddings(tmp_path)
    pd.read_csv(data["annotations"]).drop(columns="infection_state").to_csv(data["annotations"], index=False)
    model_dir = tmp_path / "classifiers"
    config = {
        "task": "infection_state",
        "input_channel": "phase",
        "embedding_model": "tiny",
        "train_datasets": [{"embeddings": str(data["embeddings"]), "annotations": str(data["annotations"])}],
        "model_dir": str(model_dir),
    }
    result = CliRunner().invoke(dynaclr, ["train-linear-classifier", "-c", str(write_yaml(tmp_path / "t.yml", config))])
    assert result.exit_code != 0
    assert "infection_state" in result.output and "annotations.csv" in result.output
    assert not model_dir.exists()


def test_demo_runs_lightning_through_viscy_utils_not_through_the_dynaclr_cli():
    """``dynaclr.cli`` imports the demo's settings, so the demo must not import ``dynaclr.cli`` (no cycle)."""
    import ast

    import dynaclr.demo

    demo_dir = Path(dynaclr.demo.__file__).parent
    imported = {
        node.module
        for path in demo_dir.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "dynaclr.cli" not in imported
    assert "viscy_utils.cli" in imported
