import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from _embedding_fixtures import N_FEATURES, N_PROJECTIONS, EchoEmbedder, IndexedCells
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from viscy_utils.callbacks import EmbeddingWriter, _embedding_assembly, _embedding_parts
from viscy_utils.callbacks._embedding_parts import PartWriter
from viscy_utils.callbacks.embedding_writer import write_embedding_dataset


def _predict(writer: EmbeddingWriter, n_samples: int = 10, batch_size: int = 4) -> Trainer:
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=[writer],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(IndexedCells(n_samples), batch_size=batch_size)
    trainer.predict(EchoEmbedder(), loader, return_predictions=False)
    return trainer


def _sorted_ids(ids) -> list[int]:
    """IndexedCells ids in the documented row order: fov_name, track_id, t (then dataset index)."""
    return sorted(ids, key=lambda i: (f"A/1/{i % 3}", i // 4, i % 4, i))


def test_predict_writes_anndata_with_documented_layout(tmp_path):
    output = tmp_path / "embeddings.zarr"
    _predict(EmbeddingWriter(output))
    adata = ad.read_zarr(output)
    ids = np.array(_sorted_ids(range(10)))
    np.testing.assert_array_equal(adata.obs["id"], ids)
    np.testing.assert_array_equal(adata.X, np.repeat(ids[:, None], N_FEATURES, axis=1).astype(np.float32))
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.obsm["X_projections"], 2 * adata.X[:, :N_PROJECTIONS])
    assert set(adata.obsm) == {"X_projections"}
    assert list(adata.obs.columns) == ["fov_name", "track_id", "t", "id"]
    assert list(adata.obs["fov_name"]) == [f"A/1/{i % 3}" for i in ids]
    np.testing.assert_array_equal(adata.obs["track_id"], ids // 4)
    assert adata.obs_names.is_unique
    assert list(adata.obs_names) == [str(i) for i in range(10)]
    provenance = adata.uns["embedding_writer"]
    assert list(provenance["row_order"]) == ["fov_name", "track_id", "t"]
    assert provenance["world_size"] == 1 and provenance["duplicates_dropped"] == 0


def test_store_is_zarr_format_3_written_without_format_warnings(tmp_path):
    output = tmp_path / "embeddings.zarr"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _predict(EmbeddingWriter(output), n_samples=5)
    assert zarr.open_group(output, mode="r").metadata.zarr_format == 3
    from_storage = [w for w in caught if any(pkg in w.filename for pkg in ("anndata", "zarr", "viscy_utils"))]
    assert not from_storage, [str(w.message) for w in from_storage]
    assert not [w for w in caught if "zarr" in str(w.message).lower()]


def test_every_write_interval_streams_and_keeps_no_predictions_in_lightning(tmp_path):
    for interval in ("batch", "epoch", "batch_and_epoch"):
        output = tmp_path / f"{interval}.zarr"
        trainer = _predict(EmbeddingWriter(output, write_interval=interval), n_samples=7, batch_size=3)
        assert trainer.predict_loop.predictions == []
        np.testing.assert_array_equal(ad.read_zarr(output).obs["id"], _sorted_ids(range(7)))


def test_streamed_store_matches_the_in_memory_writer_across_chunks_and_blocks(tmp_path, monkeypatch):
    """Shuffled batches, parts of several chunks and several output blocks: same rows as write_embedding_dataset."""
    monkeypatch.setattr(_embedding_parts, "_CHUNK_BYTES", 5 * N_FEATURES * 4)  # 5-row part chunks
    monkeypatch.setattr(_embedding_assembly, "_BLOCK_BYTES", 7 * N_FEATURES * 4)  # 7-row output chunks
    n_samples = 40
    output = tmp_path / "streamed.zarr"
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=[EmbeddingWriter(output)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(IndexedCells(n_samples), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer.predict(EchoEmbedder(), loader, return_predictions=False)
    streamed = ad.read_zarr(output)

    ids = np.array(_sorted_ids(range(n_samples)))
    cells = [IndexedCells(n_samples)[i] for i in ids]
    features = np.stack([cell["anchor"].numpy() for cell in cells])
    index = pd.DataFrame([cell["index"] for cell in cells])
    write_embedding_dataset(tmp_path / "memory.zarr", features, index, projections=2 * features[:, :N_PROJECTIONS])
    in_memory = ad.read_zarr(tmp_path / "memory.zarr")
    pd.testing.assert_frame_equal(streamed.obs, in_memory.obs)
    np.testing.assert_array_equal(streamed.X, in_memory.X)
    np.testing.assert_array_equal(streamed.obsm["X_projections"], in_memory.obsm["X_projections"])
    assert zarr.open_array(output / "X", mode="r").chunks == (7, N_FEATURES)


class _FailingEmbedder(EchoEmbedder):
    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        if batch_idx == 2:
            raise RuntimeError("node lost")
        return super().predict_step(batch, batch_idx, dataloader_idx)


def test_interrupted_predict_leaves_no_store_and_a_rerun_writes_it(tmp_path):
    output = tmp_path / "embeddings.zarr"
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=[EmbeddingWriter(output)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(RuntimeError, match="node lost"):
        trainer.predict(_FailingEmbedder(), DataLoader(IndexedCells(10), batch_size=2), return_predictions=False)
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".embeddings.zarr.partial"]
    _predict(EmbeddingWriter(output))
    np.testing.assert_array_equal(ad.read_zarr(output).obs["id"], _sorted_ids(range(10)))
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings.zarr"]


def test_existing_store_is_refused_at_predict_start(tmp_path):
    output = tmp_path / "embeddings.zarr"
    output.mkdir()
    (output / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError, match="embeddings.zarr"):
        _predict(EmbeddingWriter(output))
    assert (output / "keep.txt").read_text() == "old"


def test_overwrite_replaces_the_store(tmp_path):
    output = tmp_path / "embeddings.zarr"
    _predict(EmbeddingWriter(output), n_samples=5)
    _predict(EmbeddingWriter(output, overwrite=True), n_samples=8)
    assert ad.read_zarr(output).n_obs == 8
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings.zarr"]


def test_failed_write_keeps_the_old_store(tmp_path):
    output = tmp_path / "embeddings.zarr"
    _predict(EmbeddingWriter(output), n_samples=5)
    index = pd.DataFrame({"fov_name": ["A/1/0"] * 3, "id": [0, 1, 2]})
    with pytest.raises(ValueError, match="Row counts differ"):
        write_embedding_dataset(output, np.zeros((4, 2), np.float32), index, overwrite=True)
    assert ad.read_zarr(output).n_obs == 5


def test_write_embedding_dataset_refuses_existing_path(tmp_path):
    output = tmp_path / "embeddings.zarr"
    output.mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        write_embedding_dataset(output, np.zeros((3, 2)), pd.DataFrame({"id": [0, 1, 2]}))


def _random_embeddings(n_cells: int = 30) -> tuple[np.ndarray, pd.DataFrame]:
    features = np.random.default_rng(0).normal(size=(n_cells, 8)).astype(np.float32)
    return features, pd.DataFrame({"fov_name": ["/B/2/0"] * n_cells, "id": np.arange(n_cells)})


def test_pca_is_written_to_obsm(tmp_path):
    features, index = _random_embeddings()
    output = tmp_path / "embeddings.zarr"
    write_embedding_dataset(output, features, index, pca_kwargs={"n_components": 4})
    adata = ad.read_zarr(output)
    assert set(adata.obsm) == {"X_pca"}
    centered = (features - features.mean(0)) / features.std(0)
    singular_values = np.linalg.svd(centered, compute_uv=False)[:4]
    np.testing.assert_allclose(np.linalg.norm(adata.obsm["X_pca"], axis=0), singular_values, rtol=1e-4)
    assert set(adata.obs["fov_name"]) == {"B/2/0"}


def test_umap_and_phate_are_written_without_changing_caller_kwargs(tmp_path):
    features, index = _random_embeddings()
    umap_kwargs, phate_kwargs = {"n_neighbors": 50}, {"knn": 40}
    output = tmp_path / "embeddings.zarr"
    write_embedding_dataset(output, features, index, umap_kwargs=umap_kwargs, phate_kwargs=phate_kwargs)
    adata = ad.read_zarr(output)
    assert umap_kwargs == {"n_neighbors": 50} and phate_kwargs == {"knn": 40}
    assert adata.obsm["X_umap"].shape == (30, 2)
    assert adata.obsm["X_phate"].shape == (30, 2)


def test_prediction_without_index_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="'index'"):
        PartWriter(tmp_path / "part", rank=0, world_size=1).append({"features": np.zeros((2, 3))}, [0, 1])


def _low_rank_features(n_cells: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.normal(size=(n_cells, 2)) @ rng.normal(size=(2, 8)) * 5 + rng.normal(size=(n_cells, 8)) * 0.01).astype(
        np.float32
    )


def test_max_cells_fits_on_a_sample_and_transforms_every_cell(tmp_path):
    features = _low_rank_features(60)
    index = pd.DataFrame({"fov_name": ["A/1/0"] * 60, "track_id": np.arange(60), "t": 0, "id": np.arange(60)})
    full = tmp_path / "full.zarr"
    write_embedding_dataset(full, features, index, pca_kwargs={"n_components": 2})
    sampled = tmp_path / "sampled.zarr"

    class Cells(IndexedCells):
        def __getitem__(self, i: int) -> dict:
            return {"anchor": torch.from_numpy(features[i]), "index": index.iloc[i].to_dict()}

    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EmbeddingWriter(sampled, pca_kwargs={"n_components": 2}, phate_kwargs={"knn": 5}, max_cells=30)],
    )
    trainer.predict(EchoEmbedder(), DataLoader(Cells(60), batch_size=8), return_predictions=False)
    result = ad.read_zarr(sampled)
    assert result.obsm["X_pca"].shape == (60, 2) and result.obsm["X_phate"].shape == (60, 2)
    assert np.isfinite(result.obsm["X_phate"]).all()
    # the sample's principal plane is the data's: each sampled-fit component matches a full-fit one up to sign
    correlation = np.corrcoef(result.obsm["X_pca"].T, ad.read_zarr(full).obsm["X_pca"].T)[:2, 2:]
    assert (np.abs(correlation).max(axis=1) > 0.99).all(), correlation
    assert result.uns["embedding_writer"]["reductions_max_cells"] == 30
