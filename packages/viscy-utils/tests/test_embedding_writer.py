import anndata as ad
import numpy as np
import pandas as pd
import pytest
from _embedding_fixtures import N_FEATURES, N_PROJECTIONS, EchoEmbedder, IndexedCells
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from viscy_utils.callbacks import EmbeddingWriter
from viscy_utils.callbacks.embedding_writer import write_embedding_dataset


def _predict(writer: EmbeddingWriter, n_samples: int = 10, batch_size: int = 4) -> None:
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


def test_predict_writes_anndata_with_documented_layout(tmp_path):
    output = tmp_path / "embeddings.zarr"
    _predict(EmbeddingWriter(output))
    adata = ad.read_zarr(output)
    ids = np.arange(10)
    np.testing.assert_array_equal(adata.X, np.repeat(ids[:, None], N_FEATURES, axis=1).astype(np.float32))
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.obsm["X_projections"], 2 * adata.X[:, :N_PROJECTIONS])
    assert set(adata.obsm) == {"X_projections"}
    assert list(adata.obs.columns) == ["fov_name", "track_id", "t", "id"]
    assert list(adata.obs["fov_name"]) == [f"A/1/{i % 3}" for i in ids]
    np.testing.assert_array_equal(adata.obs["id"], ids)
    np.testing.assert_array_equal(adata.obs["track_id"], ids // 4)
    assert adata.obs_names.is_unique
    assert list(adata.obs_names) == [str(i) for i in ids]


def test_batch_interval_also_writes_the_store(tmp_path):
    output = tmp_path / "embeddings.zarr"
    _predict(EmbeddingWriter(output, write_interval="batch"), n_samples=7, batch_size=3)
    np.testing.assert_array_equal(ad.read_zarr(output).obs["id"], np.arange(7))


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
    from viscy_utils.callbacks._gather import EmbeddingBatch, assemble_table

    with pytest.raises(ValueError, match="'index'"):
        assemble_table([EmbeddingBatch({"features": np.zeros((2, 3))}, [0, 1])], rank=0, world_size=1)


def test_rank_tables_merge_in_dataset_order_without_padding_duplicates():
    """What rank 0 does with the gathered tables of a padded, shuffled 2-rank sampler (5 cells, 6 slots)."""
    from viscy_utils.callbacks._gather import EmbeddingBatch, assemble_table, merge_tables

    def rank_batches(dataset_indices: list[int]) -> list[EmbeddingBatch]:
        ids = np.asarray(dataset_indices)
        prediction = {
            "features": np.stack([ids, 10 * ids], axis=1).astype(np.float32),
            "projections": ids[:, None].astype(np.float32),
            "index": {"fov_name": [f"A/1/{i}" for i in ids], "id": ids},
        }
        return [EmbeddingBatch(prediction, dataset_indices)]

    rank_0 = assemble_table(rank_batches([3, 0, 4]), rank=0, world_size=2)
    rank_1 = assemble_table(rank_batches([1, 3, 2]), rank=1, world_size=2)  # 3 is the padding repeat
    merged = merge_tables([rank_0, rank_1])
    np.testing.assert_array_equal(merged.index["id"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(merged.features, [[i, 10 * i] for i in range(5)])
    np.testing.assert_array_equal(merged.projections[:, 0], np.arange(5))
    assert merged.index["fov_name"].tolist() == [f"A/1/{i}" for i in range(5)]
    swapped = merge_tables([rank_1, rank_0])
    np.testing.assert_array_equal(swapped.features, merged.features)
