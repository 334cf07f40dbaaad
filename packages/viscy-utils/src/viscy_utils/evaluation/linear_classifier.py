"""Linear classifiers (scikit-learn logistic regression) trained on and applied to AnnData embeddings.

Trained pipelines are saved to a local model registry folder::

    {model_dir}/{model_name}/v{k}/{model_name}.joblib            classifier
                                  {model_name}_scaler.joblib     StandardScaler (when used)
                                  {model_name}_pca.joblib        PCA (when used)
                                  {model_name}_config.json       training config + ``preprocessing``
                                  {model_name}_metrics.json/.md  metrics

Needs ``pip install 'viscy-utils[anndata,eval]'``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from viscy_utils._optional import import_optional
from viscy_utils.cli_utils import format_markdown_table
from viscy_utils.evaluation.annotation import load_annotation_anndata

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "LinearClassifierPipeline",
    "load_and_combine_datasets",
    "train_linear_classifier",
    "predict_with_classifier",
    "pipeline_model_name",
    "save_pipeline",
    "load_pipeline",
]

_logger = logging.getLogger(__name__)


class LinearClassifierPipeline:
    """A fitted classifier with its optional StandardScaler and PCA.

    Parameters
    ----------
    classifier : sklearn classifier
        Fitted classifier with ``predict`` and ``predict_proba``.
    scaler : sklearn transformer | None
        Fitted scaler applied first.
    pca : sklearn transformer | None
        Fitted PCA applied after the scaler.
    config : dict
        Training settings (task, use_scaling, use_pca, n_pca_components, classifier_params,
        split_train_data, random_seed).
    task : str
        Annotation column the classifier predicts.
    """

    def __init__(self, classifier: Any, scaler: Any, pca: Any, config: dict, task: str) -> None:
        self.classifier = classifier
        self.scaler = scaler
        self.pca = pca
        self.config = config
        self.task = task

    @property
    def classes_(self) -> np.ndarray:
        """Class labels in the order of ``predict_proba`` columns."""
        return self.classifier.classes_

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Apply the scaler, then the PCA, when present."""
        if self.scaler is not None:
            X = self.scaler.transform(X)
        if self.pca is not None:
            X = self.pca.transform(X)
        return X

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class of each row."""
        return self.classifier.predict(self.transform(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of each row, ``(n, n_classes)``."""
        return self.classifier.predict_proba(self.transform(X))


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X)


def _well_mask(fov_names: pd.Series, include_wells: Sequence[str] | None) -> np.ndarray:
    """Rows whose FOV belongs to one of ``include_wells`` (``"A/1"`` matches ``"A/1/..."``); all when None."""
    if include_wells is None:
        return np.ones(len(fov_names), dtype=bool)
    prefixes = tuple(f"{well.strip('/')}/" for well in include_wells)
    return fov_names.astype(str).str.strip("/").str.startswith(prefixes).to_numpy()


def _labelled_mask(labels: pd.Series) -> np.ndarray:
    return (labels.notna() & (labels.astype(str) != "unknown")).to_numpy()


def load_and_combine_datasets(datasets: list[dict], task: str) -> AnnData:
    """Read annotated embeddings of several datasets and concatenate the labelled cells.

    Parameters
    ----------
    datasets : list[dict]
        Each ``{"embeddings": <AnnData zarr>, "annotations": <CSV>, "include_wells": [...]}``;
        ``annotations`` is optional when the embeddings' ``obs`` has the ``task`` column, and
        ``include_wells`` keeps FOVs of those wells only.
    task : str
        Annotation column.

    Returns
    -------
    AnnData
        Cells whose label is neither missing nor ``"unknown"``, with unique obs names.

    Raises
    ------
    ValueError
        If a dataset lacks the ``task`` column (naming the column and the file), or no labelled cell is left.
    """
    ad = import_optional("anndata")
    parts = []
    for i, dataset in enumerate(datasets):
        adata = ad.read_zarr(dataset["embeddings"])
        if "annotations" in dataset:
            load_annotation_anndata(adata, dataset["annotations"], task)
        elif task not in adata.obs:
            raise ValueError(
                f"Embeddings file {dataset['embeddings']} has no annotation column {task!r} and no 'annotations' "
                f"CSV was given; obs columns: {list(adata.obs.columns)}."
            )
        keep = _well_mask(adata.obs["fov_name"], dataset.get("include_wells")) & _labelled_mask(adata.obs[task])
        if not keep.any():
            _logger.warning(f"Dataset {i} ({dataset['embeddings']}): no labelled cells for {task!r}; skipped.")
            continue
        _logger.info(f"Dataset {i} ({dataset['embeddings']}): {int(keep.sum())} labelled cells.")
        parts.append(adata[keep].copy())
    if not parts:
        raise ValueError("No training data loaded from any dataset!")
    if len(parts) == 1:
        return parts[0]
    return ad.concat(parts, join="outer", keys=[str(i) for i in range(len(parts))], index_unique="-")


def _split_metrics(prefix: str, y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    metrics_module = import_optional("sklearn.metrics")
    precision, recall, f1, _ = metrics_module.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    weighted = metrics_module.precision_recall_fscore_support(y_true, y_pred, average="weighted", zero_division=0)
    metrics = {
        f"{prefix}_accuracy": float(metrics_module.accuracy_score(y_true, y_pred)),
        f"{prefix}_weighted_precision": float(weighted[0]),
        f"{prefix}_weighted_recall": float(weighted[1]),
        f"{prefix}_weighted_f1": float(weighted[2]),
    }
    for k, label in enumerate(classes):
        metrics.update(
            {
                f"{prefix}_{label}_precision": float(precision[k]),
                f"{prefix}_{label}_recall": float(recall[k]),
                f"{prefix}_{label}_f1": float(f1[k]),
            }
        )
    return metrics


def train_linear_classifier(
    adata: AnnData,
    task: str,
    use_scaling: bool = True,
    use_pca: bool = False,
    n_pca_components: int | None = None,
    classifier_params: dict | None = None,
    split_train_data: float = 0.8,
    random_seed: int = 42,
) -> tuple[LinearClassifierPipeline, dict[str, float]]:
    """Fit a logistic regression on ``adata.X`` to predict ``adata.obs[task]``.

    Parameters
    ----------
    adata : AnnData
        Embeddings with the label column ``task`` (missing labels are dropped).
    task : str
        Label column.
    use_scaling : bool
        Standardize features (fitted on the training split).
    use_pca : bool
        Reduce features with PCA after scaling.
    n_pca_components : int | None
        PCA components (needed with ``use_pca``).
    classifier_params : dict | None
        Arguments of ``sklearn.linear_model.LogisticRegression``.
    split_train_data : float
        Fraction of cells for training; the rest is a stratified validation split (none when 1.0).
    random_seed : int
        Seed of the split.

    Returns
    -------
    tuple[LinearClassifierPipeline, dict[str, float]]
        The pipeline and metrics ``train_*`` (and ``val_*``): accuracy, weighted precision/recall/F1 and
        per-class precision/recall/F1.

    Raises
    ------
    ValueError
        If ``task`` is not an obs column, fewer than two classes are present, a class is too small to
        split, or PCA is requested without components.
    """
    linear_model = import_optional("sklearn.linear_model")
    preprocessing = import_optional("sklearn.preprocessing")
    decomposition = import_optional("sklearn.decomposition")
    model_selection = import_optional("sklearn.model_selection")

    if task not in adata.obs:
        raise ValueError(f"Embeddings have no annotation column {task!r}; obs columns: {list(adata.obs.columns)}.")
    if use_pca and not n_pca_components:
        raise ValueError("use_pca=True needs n_pca_components > 0.")
    labelled = adata.obs[task].notna().to_numpy()
    X = _dense(adata.X[labelled])
    y = adata.obs[task].to_numpy()[labelled]
    classes, counts = np.unique(y.astype(str), return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"Column {task!r} needs at least two classes to train, found {list(classes)}.")
    splits = {"train": (X, y)}
    if split_train_data < 1.0:
        if counts.min() < 2:
            raise ValueError(
                f"Each class needs 2 cells for a stratified split; counts: {dict(zip(classes, counts, strict=True))}."
            )
        X_train, X_val, y_train, y_val = model_selection.train_test_split(
            X, y, train_size=split_train_data, random_state=random_seed, stratify=y, shuffle=True
        )
        splits = {"train": (X_train, y_train), "val": (X_val, y_val)}
    X_train, y_train = splits["train"]
    scaler = preprocessing.StandardScaler().fit(X_train) if use_scaling else None
    transformed = scaler.transform(X_train) if scaler is not None else X_train
    pca = (
        decomposition.PCA(n_components=n_pca_components, random_state=random_seed).fit(transformed) if use_pca else None
    )
    if pca is not None:
        transformed = pca.transform(transformed)
    classifier_params = dict(classifier_params or {})
    classifier = linear_model.LogisticRegression(**classifier_params).fit(transformed, y_train)
    config = {
        "task": task,
        "use_scaling": use_scaling,
        "use_pca": use_pca,
        "n_pca_components": n_pca_components,
        "classifier_params": classifier_params,
        "split_train_data": split_train_data,
        "random_seed": random_seed,
    }
    pipeline = LinearClassifierPipeline(classifier, scaler, pca, config, task)
    metrics = {}
    for name, (X_split, y_split) in splits.items():
        metrics.update(_split_metrics(name, y_split, pipeline.predict(X_split), classifier.classes_))
    _logger.info("\n" + format_markdown_table(metrics, title=f"Linear classifier metrics: {task}"))
    return pipeline, metrics


def predict_with_classifier(
    adata: AnnData,
    pipeline: LinearClassifierPipeline,
    task: str,
    artifact_metadata: dict | None = None,
    include_wells: list[str] | None = None,
) -> AnnData:
    """Add a classifier's predictions to ``adata`` (in place).

    Writes ``obs[f"predicted_{task}"]`` (categorical, missing outside ``include_wells``),
    ``obsm[f"predicted_{task}_proba"]`` (``(n_cells, n_classes)``, NaN outside ``include_wells``),
    ``uns[f"predicted_{task}_classes"]`` and, with ``artifact_metadata``, ``uns[f"classifier_{task}_artifact"]``,
    ``["..._id"]`` and ``["..._version"]``.

    Parameters
    ----------
    adata : AnnData
        Embeddings (``X`` with the features the pipeline was trained on).
    pipeline : LinearClassifierPipeline
        Trained pipeline.
    task : str
        Name used in the output keys.
    artifact_metadata : dict | None
        ``artifact_name``, ``artifact_id`` and ``artifact_version`` of the pipeline.
    include_wells : list[str] | None
        Only predict cells of these wells (e.g. ``["A/1"]``).

    Returns
    -------
    AnnData
        ``adata``.
    """
    expected = getattr(pipeline.scaler or pipeline.classifier, "n_features_in_", adata.n_vars)
    if adata.n_vars != expected:
        raise ValueError(f"Embeddings have {adata.n_vars} features, the classifier expects {expected}.")
    mask = _well_mask(adata.obs["fov_name"], include_wells) if "fov_name" in adata.obs else np.ones(adata.n_obs, bool)
    classes = list(pipeline.classes_)
    predicted = np.full(adata.n_obs, None, dtype=object)
    probabilities = np.full((adata.n_obs, len(classes)), np.nan)
    if mask.any():
        X = _dense(adata.X[mask])
        predicted[mask] = pipeline.predict(X)
        probabilities[mask] = pipeline.predict_proba(X)
    adata.obs[f"predicted_{task}"] = pd.Categorical(predicted, categories=classes)
    adata.obsm[f"predicted_{task}_proba"] = probabilities
    adata.uns[f"predicted_{task}_classes"] = [str(c) for c in classes]
    if artifact_metadata is not None:
        adata.uns[f"classifier_{task}_artifact"] = artifact_metadata["artifact_name"]
        adata.uns[f"classifier_{task}_id"] = artifact_metadata["artifact_id"]
        adata.uns[f"classifier_{task}_version"] = artifact_metadata["artifact_version"]
    return adata


def pipeline_model_name(config: dict) -> str:
    """``linear-classifier-{task}-{input_channel}[-{marker}][-pca{n}]`` from a training config dict."""
    name = f"linear-classifier-{config['task']}-{config['input_channel']}"
    if config.get("marker"):
        name += f"-{config['marker']}"
    if config.get("use_pca"):
        name += f"-pca{config['n_pca_components']}"
    return name


def _versions(model_path: Path) -> list[int]:
    if not model_path.is_dir():
        return []
    return sorted(int(m.group(1)) for p in model_path.iterdir() if (m := re.fullmatch(r"v(\d+)", p.name)))


def save_pipeline(
    pipeline: LinearClassifierPipeline,
    metrics: dict[str, float],
    config: dict,
    model_dir: str | Path,
    tags: list[str] | None = None,
) -> tuple[str, Path]:
    """Save a trained pipeline as a new version in a local model registry folder.

    Parameters
    ----------
    pipeline : LinearClassifierPipeline
        Trained pipeline.
    metrics : dict[str, float]
        Its metrics (saved as JSON and as a markdown table).
    config : dict
        Training config (``task``, ``input_channel``, optional ``marker``, ``use_pca``, ``n_pca_components``...).
    model_dir : str | Path
        Registry root.
    tags : list[str] | None
        Free-form tags stored in the config file.

    Returns
    -------
    tuple[str, Path]
        The model name and the folder of the new version (``{model_dir}/{model_name}/v{k}``).
    """
    joblib = import_optional("joblib")
    model_name = pipeline_model_name({**config, **pipeline.config})
    model_path = Path(model_dir) / model_name
    model_path.mkdir(parents=True, exist_ok=True)
    version = (_versions(model_path) or [-1])[-1] + 1
    while True:
        version_dir = model_path / f"v{version}"
        try:
            version_dir.mkdir()
            break
        except FileExistsError:
            version += 1
    joblib.dump(pipeline.classifier, version_dir / f"{model_name}.joblib")
    for suffix, part in (("scaler", pipeline.scaler), ("pca", pipeline.pca)):
        if part is not None:
            joblib.dump(part, version_dir / f"{model_name}_{suffix}.joblib")
    saved_config = {
        **config,
        "preprocessing": pipeline.config,
        "tags": list(tags or []),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (version_dir / f"{model_name}_config.json").write_text(json.dumps(saved_config, indent=2, default=str))
    (version_dir / f"{model_name}_metrics.json").write_text(json.dumps(metrics, indent=2))
    (version_dir / f"{model_name}_metrics.md").write_text(format_markdown_table(metrics, title=model_name))
    _logger.info(f"Saved {model_name} v{version} to {version_dir}")
    return model_name, version_dir


def load_pipeline(
    model_dir: str | Path, model_name: str, version: str = "latest"
) -> tuple[LinearClassifierPipeline, dict, dict[str, str]]:
    """Load a pipeline saved by :func:`save_pipeline`.

    Parameters
    ----------
    model_dir : str | Path
        Registry root.
    model_name : str
        Model name, e.g. ``"linear-classifier-infection_state-phase"``.
    version : str
        ``"latest"`` or a version such as ``"v2"``.

    Returns
    -------
    tuple[LinearClassifierPipeline, dict, dict[str, str]]
        The pipeline, the saved config, and ``{artifact_name, artifact_id, artifact_version}``.

    Raises
    ------
    FileNotFoundError
        If the model or version does not exist (the available versions are listed).
    """
    joblib = import_optional("joblib")
    model_path = Path(model_dir) / model_name
    versions = _versions(model_path)
    if not versions:
        raise FileNotFoundError(f"No saved versions of {model_name!r} in {Path(model_dir)}.")
    version_name = f"v{versions[-1]}" if version == "latest" else f"v{version.lstrip('v')}"
    version_dir = model_path / version_name
    if not version_dir.is_dir():
        raise FileNotFoundError(
            f"Version {version!r} of {model_name!r} not found in {model_path}; available: {[f'v{v}' for v in versions]}."
        )
    config = json.loads((version_dir / f"{model_name}_config.json").read_text())
    optional = {
        suffix: joblib.load(path) if (path := version_dir / f"{model_name}_{suffix}.joblib").exists() else None
        for suffix in ("scaler", "pca")
    }
    preprocessing = config.get("preprocessing", {})
    pipeline = LinearClassifierPipeline(
        joblib.load(version_dir / f"{model_name}.joblib"),
        optional["scaler"],
        optional["pca"],
        preprocessing,
        preprocessing.get("task", config.get("task", "")),
    )
    metadata = {
        "artifact_name": f"{model_name}:{version_name}",
        "artifact_id": str(version_dir.resolve()),
        "artifact_version": version_name,
    }
    return pipeline, config, metadata
