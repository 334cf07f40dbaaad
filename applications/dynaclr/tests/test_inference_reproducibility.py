"""Inference reproducibility (INFER-01..03) on a tiny real plate.

A tiny model is trained for a few steps and checkpointed; a fresh module loads the checkpoint strictly,
predicts with ``EmbeddingWriter``, and the written AnnData must equal a second prediction run exactly and
match embeddings computed directly from the plate's pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dynaclr_testing import PLATE_POSITIONS, tiny_contrastive_module, tiny_triplet_datamodule
from iohub import open_ome_zarr
from lightning.pytorch import Trainer, seed_everything

anndata = pytest.importorskip("anndata")


def _load_fresh_module(ckpt_path: Path):
    module = tiny_contrastive_module()
    state_dict = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    result = module.load_state_dict(state_dict, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    return module


def _predict(paths: dict[str, Path], output_path: Path, accelerator: str) -> anndata.AnnData:
    from viscy_utils.callbacks.embedding_writer import EmbeddingWriter

    seed_everything(42)
    module = _load_fresh_module(paths["ckpt_path"])
    writer = EmbeddingWriter(output_path, phate_kwargs=None, pca_kwargs=None, umap_kwargs=None)
    trainer = Trainer(
        accelerator=accelerator,
        devices=1,
        precision="32-true",
        callbacks=[writer],
        inference_mode=True,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=output_path.parent,
    )
    trainer.predict(module, datamodule=tiny_triplet_datamodule(paths, batch_size=5))
    return anndata.read_zarr(output_path)


def _expected_obs(paths: dict[str, Path]) -> pd.DataFrame:
    """The cells in the writer's documented order: sorted by fov_name, track_id, t."""
    frames = [pd.read_csv(paths["tracks_path"] / fov / "tracks.csv").assign(fov_name=fov) for fov in PLATE_POSITIONS]
    cells = pd.concat(frames, ignore_index=True)
    return cells.sort_values(["fov_name", "track_id", "t"], kind="stable").reset_index(drop=True)


def _direct_embeddings(paths: dict[str, Path], obs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings computed from 32x32 pixel crops read with iohub, normalised by hand (Phase3D only)."""
    module = _load_fresh_module(paths["ckpt_path"]).eval()
    patches = []
    with open_ome_zarr(paths["data_path"], mode="r") as plate:
        for row in obs.itertuples():
            position = plate[row.fov_name]
            stats = position.zattrs["normalization"]["Phase3D"]["fov_statistics"]
            y, x = int(row.y), int(row.x)
            patch = np.asarray(position["0"][row.t, :, 0:1, y - 16 : y + 16, x - 16 : x + 16], dtype=np.float32)
            patch[0] = (patch[0] - stats["mean"]) / (stats["std"] + 1e-8)
            patches.append(patch)
    with torch.no_grad():
        features, projections = module(torch.from_numpy(np.stack(patches)))
    return features.numpy(), projections.numpy()


def test_checkpoint_loads_strictly_into_a_fresh_module(tiny_trained_checkpoint):
    state_dict = torch.load(tiny_trained_checkpoint["ckpt_path"], map_location="cpu", weights_only=True)["state_dict"]
    assert all(key.startswith("model.") for key in state_dict)
    module = _load_fresh_module(tiny_trained_checkpoint["ckpt_path"])
    features, projections = module(torch.rand(3, 2, 1, 32, 32))
    assert features.shape == (3, 768) and projections.shape == (3, 32)


def test_predicted_embeddings_are_written_and_reproducible_on_cpu(tiny_trained_checkpoint, tmp_path):
    first = _predict(tiny_trained_checkpoint, tmp_path / "first.zarr", "cpu")
    second = _predict(tiny_trained_checkpoint, tmp_path / "second.zarr", "cpu")
    expected_obs = _expected_obs(tiny_trained_checkpoint)

    # INFER-02: the store is written with the documented layout, one row per cell, sorted by fov_name, track_id, t
    assert first.X.shape == (len(expected_obs), 768) and first.X.dtype == np.float32
    assert first.obsm["X_projections"].shape == (len(expected_obs), 32)
    assert first.obs["fov_name"].tolist() == expected_obs["fov_name"].tolist()
    assert first.obs["id"].astype(int).tolist() == expected_obs["id"].tolist()

    # INFER-03: a second run gives exactly the same embeddings and order
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.obsm["X_projections"], second.obsm["X_projections"])
    assert first.obs["fov_name"].tolist() == second.obs["fov_name"].tolist()
    assert first.obs["id"].tolist() == second.obs["id"].tolist()
    pd.testing.assert_frame_equal(first.obs, second.obs)

    # and the embeddings are those of the cells' pixels
    features, projections = _direct_embeddings(tiny_trained_checkpoint, expected_obs)
    np.testing.assert_allclose(first.X, features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.obsm["X_projections"], projections, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_predicted_embeddings_are_reproducible_on_cuda(tiny_trained_checkpoint, tmp_path):
    first = _predict(tiny_trained_checkpoint, tmp_path / "first.zarr", "gpu")
    second = _predict(tiny_trained_checkpoint, tmp_path / "second.zarr", "gpu")
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.obsm["X_projections"], second.obsm["X_projections"])
    pd.testing.assert_frame_equal(first.obs, second.obs)
    on_cpu = _predict(tiny_trained_checkpoint, tmp_path / "cpu.zarr", "cpu")
    np.testing.assert_allclose(first.X, on_cpu.X, rtol=1e-3, atol=1e-4)
