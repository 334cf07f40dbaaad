"""The ``dynaclr train-linear-classifier`` and ``apply-linear-classifier`` commands.

Thin wrappers over :mod:`viscy_utils.evaluation.linear_classifier`: validate the YAML config, check the
inputs before any work, then train (and save into the local model registry ``model_dir``) or apply a
scikit-learn pipeline to AnnData embeddings written by ``dynaclr predict``.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["apply_from_config", "train_from_config"]

_INDEX_COLUMNS = ("fov_name", "id")


def _validated(model_class, config_path: str):
    """Load ``config_path`` and validate it with the pydantic ``model_class``, as a click error on failure."""
    from pydantic import ValidationError

    from viscy_utils.cli_utils import load_config

    try:
        return model_class(**(load_config(config_path) or {}))
    except ValidationError as error:
        raise click.ClickException(f"invalid config {config_path}:\n{error}") from error


def _check_annotation_tables(datasets: list[dict], task: str) -> None:
    """Every annotations CSV must have the index columns and the task column."""
    import pandas as pd

    for i, dataset in enumerate(datasets):
        if "annotations" not in dataset:
            continue
        columns = list(pd.read_csv(dataset["annotations"], nrows=0).columns)
        missing = [c for c in (*_INDEX_COLUMNS, task) if c not in columns]
        if missing:
            raise click.ClickException(
                f"dataset {i}: annotations {dataset['annotations']} lack column(s) {missing} needed to train a "
                f"'{task}' classifier (found columns {columns})"
            )


def train_from_config(config_path: str) -> None:
    """Train a linear classifier as configured in ``config_path`` and save it under the config's ``model_dir``.

    Parameters
    ----------
    config_path : str
        YAML file validated as ``LinearClassifierTrainConfig``.
    """
    from viscy_utils.cli_utils import format_markdown_table
    from viscy_utils.evaluation.linear_classifier_config import LinearClassifierTrainConfig

    config = _validated(LinearClassifierTrainConfig, config_path)
    click.echo(f"Task: {config.task}, input channel: {config.input_channel}, model: {config.embedding_model}")
    if config.marker:
        click.echo(f"Marker: {config.marker}")
    click.echo(f"Datasets: {len(config.train_datasets)}")
    _check_annotation_tables(config.train_datasets, config.task)

    from viscy_utils.evaluation.linear_classifier import (
        load_and_combine_datasets,
        save_pipeline,
        train_linear_classifier,
    )

    try:
        adata = load_and_combine_datasets(config.train_datasets, config.task)
        pipeline, metrics = train_linear_classifier(
            adata,
            config.task,
            use_scaling=config.use_scaling,
            use_pca=config.use_pca,
            n_pca_components=config.n_pca_components,
            classifier_params={
                "max_iter": config.max_iter,
                "class_weight": config.class_weight,
                "solver": config.solver,
                "random_state": config.random_seed,
            },
            split_train_data=config.split_train_data,
            random_seed=config.random_seed,
        )
    except (KeyError, ValueError) as error:
        raise click.ClickException(f"training failed for {config_path}: {error}") from error
    click.echo(format_markdown_table(metrics, title="Metrics"))
    name, version_dir = save_pipeline(pipeline, metrics, config.model_dump(), config.model_dir, tags=config.wandb_tags)
    click.echo(f"Saved {name} to {version_dir}")


def apply_from_config(config_path: str) -> None:
    """Predict labels for the embeddings named in ``config_path`` and write them into an AnnData store.

    Parameters
    ----------
    config_path : str
        YAML file validated as ``LinearClassifierInferenceConfig``.
    """
    from viscy_utils.evaluation.linear_classifier_config import LinearClassifierInferenceConfig

    config = _validated(LinearClassifierInferenceConfig, config_path)
    write_path = Path(config.output_path or config.embeddings_path)

    import anndata as ad

    from viscy_utils.evaluation.linear_classifier import load_pipeline, predict_with_classifier
    from viscy_utils.store import write_anndata_zarr

    try:
        pipeline, loaded_config, metadata = load_pipeline(config.model_dir, config.model_name, config.version)
        task = loaded_config["task"]
        marker = loaded_config.get("marker")
        task_key = f"{task}_{marker}" if marker else task
        adata = ad.read_zarr(config.embeddings_path)
        adata = predict_with_classifier(adata, pipeline, task_key, metadata, config.include_wells)
    except (FileNotFoundError, KeyError, ValueError) as error:
        raise click.ClickException(f"cannot apply {config.model_name!r} ({config_path}): {error}") from error
    write_anndata_zarr(adata, write_path, overwrite=True)
    predicted = adata.obs[f"predicted_{task_key}"]
    click.echo(f"Wrote predictions for {int(predicted.notna().sum())} of {len(predicted)} cells to {write_path}")
    click.echo(predicted.value_counts().to_string())
