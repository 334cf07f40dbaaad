"""Integration: a real 2-process CPU DDP run (gloo) of fit then predict, in a subprocess.

``_ddp_fit_predict_script.py`` trains ContrastiveModule + NTXentHCL(gather_distributed=True) with
MultiExperimentDataModule's FlexibleBatchSampler (``use_distributed_sampler=False``), then predicts with
EmbeddingWriter. The store must hold every tracked cell of both experiments exactly once, with the
embedding a single process computes for that cell from the same weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _ddp_fit_predict_script import datamodule, module
from _multi_experiment_plates import write_two_experiment_plates
from lightning.pytorch import Trainer

from viscy_utils.callbacks import EmbeddingWriter

SCRIPT = Path(__file__).with_name("_ddp_fit_predict_script.py")
OBS_KEY = ["fov_name", "track_id", "t", "id"]


def _tracked_cells(experiments_yaml: Path) -> pd.DataFrame:
    """Every row of every per-FOV tracks CSV of every experiment, read directly from disk."""
    import yaml

    frames = []
    for entry in yaml.safe_load(experiments_yaml.read_text())["experiments"]:
        root = Path(entry["tracks_path"])
        for csv in sorted(root.glob("*/*/*/*.csv")):
            frames.append(pd.read_csv(csv).assign(fov_name=str(csv.parent.relative_to(root))))
    return pd.concat(frames, ignore_index=True)


def _rows(frame: pd.DataFrame) -> Counter:
    return Counter(tuple(row) for row in frame[OBS_KEY].astype(str).itertuples(index=False))


def _single_process_embeddings(experiments_yaml: Path, weights: Path, output: Path):
    import anndata

    model = module()
    model.load_state_dict(torch.load(weights, weights_only=True))
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EmbeddingWriter(output, pca_kwargs=None, phate_kwargs=None)],
        default_root_dir=output.parent,
    )
    trainer.predict(model, datamodule=datamodule(str(experiments_yaml)), return_predictions=False)
    return anndata.read_zarr(output)


def test_ddp_fit_then_predict_writes_every_cell_exactly_once(tmp_path):
    import anndata

    plates = write_two_experiment_plates(tmp_path)
    output = tmp_path / "ddp"
    output.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": os.pathsep.join([str(SCRIPT.parent), *sys.path])}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(plates["experiments_yaml"]), str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, "only rank 0 reports"
    report = json.loads(lines[0].removeprefix("RESULT "))

    # fit: both ranks ran the same number of steps on different batches of their own sampler shard
    rank0, rank1 = report["ranks"]
    assert report["world_size"] == 2
    assert (rank0["sampler"], rank1["sampler"]) == ([2, 0], [2, 1])
    assert rank0["global_step"] == rank1["global_step"] == 3
    assert len(rank0["anchor_sums"]) == len(rank1["anchor_sums"]) == 3
    assert all(a != b for a, b in zip(rank0["anchor_sums"], rank1["anchor_sums"], strict=True))
    # gradients were averaged: identical weights on both ranks, and different from the initial ones
    assert rank0["weights"] == rank1["weights"]
    initial = torch.cat([p.detach().flatten() for p in module().parameters()])
    assert not torch.allclose(torch.tensor(rank0["weights"]), initial)

    # predict: every tracked cell of both experiments exactly once (both plates share FOV names and ids)
    cells = _tracked_cells(plates["experiments_yaml"])
    adata = anndata.read_zarr(output / "embeddings.zarr")
    assert adata.n_obs == len(cells) == 93
    assert _rows(adata.obs) == _rows(cells)
    assert adata.X.shape == (93, 8) and adata.obsm["X_projections"].shape == (93, 4)
    assert np.isfinite(adata.X).all()

    # each row holds that cell's embedding: same as a single-process prediction with the trained weights
    reference = _single_process_embeddings(plates["experiments_yaml"], output / "weights.pt", tmp_path / "one.zarr")
    pd.testing.assert_frame_equal(adata.obs[OBS_KEY], reference.obs[OBS_KEY])
    np.testing.assert_allclose(adata.X, reference.X, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(adata.obsm["X_projections"], reference.obsm["X_projections"], rtol=1e-5, atol=1e-4)
    assert np.unique(adata.X, axis=0).shape[0] > 1
