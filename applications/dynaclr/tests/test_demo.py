"""``dynaclr demo``: the whole offline pipeline at its --fast size, and its evaluation pieces."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from iohub.ngff import open_ome_zarr

from dynaclr.cli import dynaclr
from dynaclr.demo.evaluate import labelled_embeddings, probe_accuracy

LIBRARY_NOISE = (
    "LightningCLI's args parameter",  # args passed while sys.argv holds arguments too
    "litlogger",
    "litmodels",
    "treespec",
    "LeafSpec",
    "pytree",
    "Writing zarr v2 data",  # anndata's warning that its Zarr v2 default will change
    "zarr v2",
    "zarr v3 autosharding",  # anndata, when writing v3 without choosing the sharding
    "Consolidated metadata is currently not part",  # zarr, on anndata's consolidated v3 stores
)


def _dynaclr_command() -> list[str]:
    script = shutil.which("dynaclr", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "dynaclr.cli"]


@pytest.fixture(scope="module")
def fast_demo(tmp_path_factory):
    """``dynaclr demo --fast`` run once, as a user runs it: a separate process in an empty folder."""
    root = tmp_path_factory.mktemp("demo")
    workdir, cwd = root / "run", root / "cwd"
    cwd.mkdir()
    process = subprocess.run(
        [*_dynaclr_command(), "demo", "--fast", "--workdir", str(workdir)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert not any(cwd.iterdir()), "the demo must write only into its work folder"
    return workdir, SimpleNamespace(exit_code=process.returncode, output=process.stdout)


def test_fast_demo_prints_no_library_noise(fast_demo):
    _, result = fast_demo
    assert result.exit_code == 0, result.output
    assert "Linear probe accuracy" in result.output
    for noise in LIBRARY_NOISE:
        assert noise not in result.output, f"{noise!r} in the demo output:\n{result.output}"


def test_fast_demo_prints_both_probe_accuracies(fast_demo):
    workdir, result = fast_demo
    assert result.exit_code == 0, result.output
    metrics = json.loads((workdir / "metrics.json").read_text())
    for name in ("trained", "random"):
        accuracy = metrics["probe"][name]["accuracy"]
        assert 0.0 <= accuracy <= 1.0
        assert f"{name} encoder" in result.output and f"{accuracy:.3f}" in result.output
    assert metrics["trained_minus_random"] == pytest.approx(
        metrics["probe"]["trained"]["accuracy"] - metrics["probe"]["random"]["accuracy"]
    )


def test_fast_demo_writes_every_artifact(fast_demo):
    workdir, _ = fast_demo
    artifacts = (
        "report.md",
        "fit.yml",
        "predict_trained.yml",
        "checkpoints/last.ckpt",
        "data/experiments.yml",
        "logs/predict_trained/config.yaml",
        "logs/predict_random/config.yaml",
    )
    for name in artifacts:
        assert (workdir / name).is_file(), name
    assert (workdir / "embeddings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (workdir / "report.md").read_text()
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert f"{metrics['probe']['trained']['accuracy']:.3f}" in report
    fit = yaml.safe_load((workdir / "fit.yml").read_text())
    data_args = fit["data"]["init_args"]
    assert fit["model"]["init_args"]["loss_function"]["class_path"] == "dynaclr.loss.NTXentHCL"
    assert data_args["experiment_aware"] and data_args["condition_balanced"] and data_args["temporal_enrichment"]
    assert data_args["leaky"] > 0
    assert set(data_args["val_fovs"]) == set(metrics["held_out_fovs"])


ONLINE_TAGS = {
    "eval/effective_rank",
    "eval/effective_rank_projections",
    "eval/temporal_smoothness",
    "eval/adjacent_to_random_ratio",
    "eval/knn_accuracy",
    "eval/linear_probe_accuracy",
}


def test_fast_demo_fit_logs_online_eval_to_tensorboard_and_reports_it(fast_demo):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, _ = fast_demo
    events = EventAccumulator(str(workdir / "logs" / "fit" / "version_0"))
    events.Reload()
    assert ONLINE_TAGS <= set(events.Tags()["scalars"])
    online = json.loads((workdir / "metrics.json").read_text())["online_eval"]
    assert ONLINE_TAGS | {"loss/train_epoch", "loss/val_epoch"} <= set(online)
    final_rank = events.Scalars("eval/effective_rank")[-1].value
    assert online["eval/effective_rank"] == pytest.approx(final_rank)
    assert 1.0 <= final_rank <= 768
    assert (workdir / "online_metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "online_metrics.png" in (workdir / "report.md").read_text()


def test_fast_demo_uses_two_experiments_with_different_reporters(fast_demo):
    workdir, _ = fast_demo
    registry = yaml.safe_load((workdir / "data" / "experiments.yml").read_text())["experiments"]
    assert len(registry) == 2
    reporters = {entry["source_channel"][1] for entry in registry}
    assert len(reporters) == 2
    for entry in registry:
        with open_ome_zarr(entry["data_path"], mode="r") as plate:
            assert plate.channel_names == entry["channel_names"]
            assert set(plate.zattrs["normalization"]) == set(entry["channel_names"]), entry["name"]


def test_fast_demo_embeds_every_tracked_cell_once(fast_demo):
    workdir, _ = fast_demo
    truth = pd.concat(
        pd.read_csv(workdir / "data" / name / "ground_truth.csv") for name in ("demo_gfp", "demo_mcherry")
    )
    for name in ("trained", "random"):
        obs = ad.read_zarr(workdir / f"embeddings_{name}.zarr").obs
        keys = obs[["fov_name", "track_id", "t"]].astype({"fov_name": str, "track_id": int, "t": int})
        assert not keys.duplicated().any()
        assert len(keys) == len(truth)


def test_trained_and_random_embeddings_differ(fast_demo):
    workdir, _ = fast_demo
    trained = ad.read_zarr(workdir / "embeddings_trained.zarr").X
    random = ad.read_zarr(workdir / "embeddings_random.zarr").X
    assert trained.shape == random.shape
    assert not np.allclose(trained, random)


def test_demo_refuses_a_non_empty_folder_and_keeps_its_content(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(dynaclr, ["demo", "--fast", "--workdir", str(tmp_path)])
    assert result.exit_code != 0
    assert "not empty" in str(result.exception)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_probe_separates_linearly_separable_states_and_not_noise():
    rng = np.random.default_rng(0)
    n = 400
    state = rng.integers(0, 2, n)
    fov = np.where(np.arange(n) < 300, "A/1/0", "A/1/1")
    cells = pd.DataFrame({"fov_name": fov, "infection_state": state})
    separable = rng.normal(size=(n, 5)) + 4.0 * state[:, None]
    noise = rng.normal(size=(n, 5))
    assert probe_accuracy(separable, cells, ["A/1/1"]).accuracy == 1.0
    result = probe_accuracy(noise, cells, ["A/1/1"])
    assert result.n_train == 300 and result.n_test == 100
    assert result.accuracy < 0.7  # 100 test cells: chance is 0.5 +- 0.05


def test_embeddings_without_ground_truth_are_rejected(tmp_path):
    obs = pd.DataFrame({"fov_name": ["A/1/0", "A/1/0"], "track_id": [0, 1], "t": [0, 0]})
    obs.index = obs.index.astype(str)
    store = tmp_path / "emb.zarr"
    ad.AnnData(X=np.zeros((2, 3), dtype=np.float32), obs=obs, obsm={"X_pca": np.zeros((2, 2))}).write_zarr(store)
    truth = pd.DataFrame(
        {
            "experiment": ["e"],
            "fov_name": ["A/1/0"],
            "track_id": [0],
            "t": [0],
            "condition": ["x"],
            "infection_state": [0],
        }
    )
    with pytest.raises(ValueError, match="no ground truth"):
        labelled_embeddings(store, truth)
