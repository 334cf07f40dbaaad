"""Validated configurations of the linear-classifier train and apply commands (pydantic v2).

Trained pipelines are stored in a local model registry folder (``model_dir``) instead of an account-bound
service. The ``wandb_*`` fields are still accepted so that existing configs parse; they are recorded as
provenance in the saved pipeline's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

__all__ = [
    "VALID_TASKS",
    "VALID_CHANNELS",
    "LinearClassifierTrainConfig",
    "LinearClassifierInferenceConfig",
]

VALID_TASKS = Literal["infection_state", "organelle_state", "cell_division_state", "cell_death_state"]
VALID_CHANNELS = Literal["phase", "sensor", "organelle"]

DEFAULT_MODEL_DIR = "linear_classifiers"


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("Field cannot be empty")
    return value


class LinearClassifierTrainConfig(BaseModel):
    """Configuration of ``dynaclr train-linear-classifier``.

    Each ``train_datasets`` entry is ``{"embeddings": <AnnData zarr>, "annotations": <CSV>}`` with an optional
    ``"include_wells": ["A/1", ...]``; ``annotations`` may be omitted when the embeddings' ``obs`` already has
    the task column. The trained pipeline is saved under ``model_dir``.
    """

    task: VALID_TASKS
    input_channel: VALID_CHANNELS
    marker: str | None = None
    embedding_model: str = Field(min_length=1)
    train_datasets: list[dict] = Field(min_length=1)
    use_scaling: bool = True
    use_pca: bool = False
    n_pca_components: int | None = None
    max_iter: int = Field(default=1000, gt=0)
    class_weight: Literal["balanced"] | None = "balanced"
    solver: str = "liblinear"
    split_train_data: float = Field(default=0.8, gt=0.0, lt=1.0)
    random_seed: int = 42
    model_dir: str = Field(default=DEFAULT_MODEL_DIR, min_length=1)
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_tags: list[str] = []

    _check_blank = field_validator("embedding_model", "wandb_project", "model_dir")(_not_blank)

    @field_validator("train_datasets")
    @classmethod
    def _check_datasets(cls, datasets: list[dict]) -> list[dict]:
        for i, dataset in enumerate(datasets):
            if not isinstance(dataset, dict) or "embeddings" not in dataset:
                raise ValueError(f"Dataset {i}: expected a dict with an 'embeddings' key, got {dataset!r}")
            if not Path(dataset["embeddings"]).exists():
                raise ValueError(f"Dataset {i}: Embeddings file not found: {dataset['embeddings']}")
            if "annotations" in dataset and not Path(dataset["annotations"]).exists():
                raise ValueError(f"Dataset {i}: Annotations file not found: {dataset['annotations']}")
        return datasets

    @model_validator(mode="after")
    def _check_pca(self) -> LinearClassifierTrainConfig:
        if self.use_pca and (self.n_pca_components is None or self.n_pca_components <= 0):
            raise ValueError(f"use_pca=True needs n_pca_components > 0, got {self.n_pca_components}")
        return self


class LinearClassifierInferenceConfig(BaseModel):
    """Configuration of ``dynaclr apply-linear-classifier``.

    The pipeline ``model_name`` (version ``version``, ``"latest"`` for the newest) is loaded from ``model_dir``.
    Predictions are written to ``output_path``, or back into ``embeddings_path`` when it is None.
    """

    model_name: str = Field(min_length=1)
    version: str = Field(default="latest", min_length=1)
    embeddings_path: str = Field(min_length=1)
    output_path: str | None = None
    include_wells: list[str] | None = None
    overwrite: bool = False
    model_dir: str = Field(default=DEFAULT_MODEL_DIR, min_length=1)
    wandb_project: str | None = None
    wandb_entity: str | None = None

    _check_blank = field_validator("model_name", "version", "embeddings_path", "model_dir", "wandb_project")(_not_blank)

    @field_validator("embeddings_path")
    @classmethod
    def _check_embeddings(cls, path: str) -> str:
        if not Path(path).exists():
            raise ValueError(f"Embeddings file not found: {path}")
        return path

    @model_validator(mode="after")
    def _check_output(self) -> LinearClassifierInferenceConfig:
        if self.output_path is not None and Path(self.output_path).exists() and not self.overwrite:
            raise ValueError(f"Output file already exists: {self.output_path}. Set overwrite=true to overwrite.")
        return self
