import anndata as ad
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from viscy_utils.callbacks.embedding_writer import read_embedding_dataset
from viscy_utils.evaluation.annotation import convert, load_annotation_anndata
from viscy_utils.trainer import VisCyTrainer


def _legacy_dataset(n: int = 6) -> xr.Dataset:
    rng = np.random.default_rng(0)
    coords = {
        "fov_name": ("sample", [f"/A/1/{i % 2}" for i in range(n)]),
        "track_id": ("sample", np.arange(n) // 2),
        "t": ("sample", np.arange(n) % 2),
        "id": ("sample", np.arange(n)),
        "projections": (("sample", "projection"), rng.normal(size=(n, 3))),
    }
    for i in (1, 2, 10):
        coords[f"PCA{i}"] = ("sample", np.full(n, float(i)))
    coords["UMAP1"], coords["UMAP2"] = ("sample", np.zeros(n)), ("sample", np.ones(n))
    return xr.Dataset({"features": (("sample", "features"), rng.normal(size=(n, 4)))}, coords=coords)


def test_convert_legacy_store(tmp_path):
    dataset = _legacy_dataset()
    source = tmp_path / "legacy.zarr"
    dataset.to_zarr(source)
    output = tmp_path / "converted.zarr"
    VisCyTrainer(logger=False).convert_to_anndata(source, output)
    adata = ad.read_zarr(output)
    np.testing.assert_allclose(adata.X, dataset["features"].values)
    assert list(adata.obs.columns) == ["fov_name", "track_id", "t", "id"]
    assert list(adata.obs["fov_name"]) == ["A/1/0", "A/1/1"] * 3
    np.testing.assert_allclose(adata.obsm["X_projections"], dataset["projections"].values)
    np.testing.assert_array_equal(adata.obsm["X_pca"][0], [1.0, 2.0, 10.0])  # natural order of PCA1, PCA2, PCA10
    np.testing.assert_array_equal(adata.obsm["X_umap"][0], [0.0, 1.0])
    assert "X_phate" not in adata.obsm
    with pytest.raises(FileExistsError, match="converted.zarr"):
        convert(source, output)


def test_read_embedding_dataset_indexes_available_columns(tmp_path):
    source = tmp_path / "legacy.zarr"
    _legacy_dataset().to_zarr(source)
    dataset = read_embedding_dataset(source)
    assert list(dataset.indexes["sample"].names) == ["fov_name", "track_id", "t", "id"]


def test_load_annotation_matches_fov_and_id(tmp_path):
    obs = pd.DataFrame({"fov_name": ["A/1/0", "A/1/0", "B/1/0"], "id": [1, 2, 1]}, index=["0", "1", "2"])
    adata = ad.AnnData(X=np.zeros((3, 2)), obs=obs)
    csv = tmp_path / "annotations.csv"
    pd.DataFrame({"fov_name": ["/B/1/0", "/A/1/0"], "id": [1, 1], "state": [2, 1]}).to_csv(csv, index=False)
    load_annotation_anndata(adata, str(csv), "state", categories={1: "uninfected", 2: "infected"})
    assert adata.obs["state"].tolist()[0] == "uninfected"
    assert pd.isna(adata.obs["state"].iloc[1])
    assert adata.obs["state"].iloc[2] == "infected"
