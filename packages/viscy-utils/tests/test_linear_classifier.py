import anndata as ad
import numpy as np
import pandas as pd
import pytest

from viscy_utils.evaluation.linear_classifier import (
    load_and_combine_datasets,
    load_pipeline,
    predict_with_classifier,
    save_pipeline,
    train_linear_classifier,
)

TASK = "infection_state"


def _embeddings(n_per_class: int = 60, n_features: int = 16, seed: int = 0) -> tuple[ad.AnnData, pd.DataFrame]:
    """Two well-separated Gaussian classes; cells in wells A/1 (infected) and B/1 (uninfected)."""
    rng = np.random.default_rng(seed)
    centers = np.zeros((2, n_features))
    centers[1, :4] = 4.0
    labels = np.repeat(["uninfected", "infected"], n_per_class)
    X = (rng.normal(size=(2 * n_per_class, n_features)) + centers[np.repeat([0, 1], n_per_class)]).astype(np.float32)
    fov_name = np.where(labels == "infected", "A/1/0", "B/1/0")
    obs = pd.DataFrame({"fov_name": fov_name, "id": np.arange(2 * n_per_class), "t": 0})
    obs.index = obs.index.astype(str)
    annotations = pd.DataFrame({"fov_name": "/" + obs["fov_name"], "id": obs["id"], TASK: labels})
    annotations.loc[annotations.index[:5], TASK] = "unknown"
    return ad.AnnData(X=X, obs=obs), annotations


@pytest.fixture
def dataset(tmp_path):
    adata, annotations = _embeddings()
    embeddings_path, annotations_path = tmp_path / "emb.zarr", tmp_path / "annotations.csv"
    adata.write_zarr(embeddings_path)
    annotations.to_csv(annotations_path, index=False)
    return {"embeddings": str(embeddings_path), "annotations": str(annotations_path)}


def test_separable_classes_are_learned_and_applied(dataset, tmp_path):
    train = load_and_combine_datasets([dataset], TASK)
    assert train.n_obs == 115  # the five "unknown" cells are dropped
    assert set(train.obs[TASK]) == {"infected", "uninfected"}
    pipeline, metrics = train_linear_classifier(train, TASK, classifier_params={"random_state": 0})
    assert metrics["train_accuracy"] > 0.97
    assert metrics["val_accuracy"] > 0.95
    assert {"val_infected_f1", "val_uninfected_recall", "train_weighted_precision"} <= set(metrics)

    config = {"task": TASK, "input_channel": "phase", "marker": None, "use_pca": False}
    model_name, version_dir = save_pipeline(pipeline, metrics, config, tmp_path / "registry")
    assert model_name == "linear-classifier-infection_state-phase"
    assert version_dir.name == "v0"
    loaded, loaded_config, metadata = load_pipeline(tmp_path / "registry", model_name)
    assert loaded_config["task"] == TASK
    assert metadata["artifact_name"] == f"{model_name}:v0"

    adata = ad.read_zarr(dataset["embeddings"])
    predict_with_classifier(adata, loaded, TASK, artifact_metadata=metadata, include_wells=["A/1"])
    output = tmp_path / "predicted.zarr"
    adata.write_zarr(output)
    result = ad.read_zarr(output)
    infected = result.obs["fov_name"] == "A/1/0"
    assert (result.obs.loc[infected, f"predicted_{TASK}"] == "infected").mean() > 0.95
    assert result.obs.loc[~infected, f"predicted_{TASK}"].isna().all()
    proba = result.obsm[f"predicted_{TASK}_proba"]
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba[infected.to_numpy()].sum(axis=1), 1.0)
    assert np.isnan(proba[~infected.to_numpy()]).all()
    assert list(result.uns[f"predicted_{TASK}_classes"]) == ["infected", "uninfected"]
    assert result.uns[f"classifier_{TASK}_version"] == "v0"


def test_saving_again_creates_a_new_version(dataset, tmp_path):
    pipeline, metrics = train_linear_classifier(load_and_combine_datasets([dataset], TASK), TASK, split_train_data=1.0)
    assert not any(key.startswith("val_") for key in metrics)
    config = {"task": TASK, "input_channel": "sensor", "marker": "g3bp1", "use_pca": False}
    save_pipeline(pipeline, metrics, config, tmp_path)
    name, second = save_pipeline(pipeline, metrics, config, tmp_path)
    assert name == "linear-classifier-infection_state-sensor-g3bp1"
    assert second.name == "v1"
    assert load_pipeline(tmp_path, name, version="latest")[2]["artifact_version"] == "v1"
    with pytest.raises(FileNotFoundError, match=r"available: \['v0', 'v1'\]"):
        load_pipeline(tmp_path, name, version="v7")


def test_pca_pipeline_reduces_features(dataset):
    train = load_and_combine_datasets([dataset], TASK)
    pipeline, metrics = train_linear_classifier(train, TASK, use_pca=True, n_pca_components=3)
    assert pipeline.transform(train.X[:5]).shape == (5, 3)
    assert metrics["val_accuracy"] > 0.95


def test_missing_annotation_column_names_column_and_file(dataset, tmp_path):
    csv = tmp_path / "no_task.csv"
    pd.read_csv(dataset["annotations"]).drop(columns=TASK).to_csv(csv, index=False)
    with pytest.raises(ValueError, match=rf"no_task\.csv has no column\(s\) \['{TASK}'\]"):
        load_and_combine_datasets([{"embeddings": dataset["embeddings"], "annotations": str(csv)}], TASK)


def test_embeddings_without_annotation_column_name_the_file(dataset):
    with pytest.raises(ValueError, match=rf"emb\.zarr has no annotation column '{TASK}'"):
        load_and_combine_datasets([{"embeddings": dataset["embeddings"]}], TASK)


def test_training_without_the_column_is_rejected():
    adata, _ = _embeddings(n_per_class=5)
    with pytest.raises(ValueError, match=f"no annotation column '{TASK}'"):
        train_linear_classifier(adata, TASK)
