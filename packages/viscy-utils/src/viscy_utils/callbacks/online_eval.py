"""Online evaluation of a contrastive run on the validation embeddings it already computes."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch import Callback, LightningModule, Trainer

from viscy_utils.callbacks._embedding_parts import to_numpy
from viscy_utils.callbacks._gather import (
    EmbeddingBatch,
    EmbeddingTable,
    assemble_table,
    gather_to_rank_zero,
    merge_tables,
)
from viscy_utils.evaluation.online_metrics import (
    effective_rank,
    fov_split,
    linear_probe_accuracy,
    temporal_smoothness,
    weighted_knn_accuracy,
)

__all__ = ["OnlineEvalCallback"]

_logger = logging.getLogger(__name__)

#: The LightningModule attribute its ``validation_step`` fills with the batch's anchor embeddings.
EMBEDDINGS_ATTRIBUTE = "validation_embeddings"
#: The index column holding each sample's position in the validation dataset (identifies duplicates).
DATASET_INDEX_KEY = "dataset_index"
_UNKNOWN_LABELS = ("unknown", -1)
_SEED = 0


def _track_keys(index: pd.DataFrame) -> pd.Series:
    """One identity per track, unique over experiments and FOVs."""
    if "global_track_id" in index:
        return index["global_track_id"].astype(str)
    parts = [index[c].astype(str) for c in ("experiment", "fov_name", "track_id") if c in index]
    return parts[0].str.cat(parts[1:], sep="/")


class OnlineEvalCallback(Callback):
    """Effective rank, temporal smoothness and label read-outs of the validation embeddings.

    The module's ``validation_step`` must store each batch's anchor embeddings in
    ``pl_module.validation_embeddings``, a dict with ``features`` ``(B, F)``, ``projections`` ``(B, P)``
    and ``index`` (columns of the batch's tracking index; ``dataset_index`` identifies repeated samples),
    as ``dynaclr.engine.ContrastiveModule`` does: nothing is embedded a second time. At the end of every
    ``every_n_epochs``-th validation epoch the embeddings are gathered from all ranks (each cell once)
    and rank 0 logs:

    - ``eval/effective_rank`` and ``eval/effective_rank_projections`` (RankMe; near 1 means collapse);
    - ``eval/temporal_smoothness`` (Spearman of embedding vs time distance within tracks) and
      ``eval/adjacent_to_random_ratio`` (consecutive frames vs random pairs; below 1 is smooth);
    - with ``label_key``: ``eval/knn_accuracy`` (weighted k-NN) and ``eval/linear_probe_accuracy``
      (logistic regression on standardised features), both trained on some FOVs and scored on others.

    Parameters
    ----------
    every_n_epochs : int
        Evaluate every this many epochs.
    max_cells : int
        Cap on the cells evaluated (a seeded subsample beyond it; each rank collects at most its share).
    label_key : str | None
        Column of the tracks tables carried by the batch index (e.g. ``infection_state``); rows whose
        label is missing, ``"unknown"`` or -1 are left out of the read-outs.
    k : int
        Neighbours of the k-NN.
    temperature : float
        Temperature of the k-NN vote weights.

    Attributes
    ----------
    last_embeddings : EmbeddingTable | None
        On rank 0, the gathered embeddings of the last evaluation (None elsewhere and before).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_cells: int = 20000,
        label_key: str | None = None,
        k: int = 20,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"OnlineEvalCallback: every_n_epochs must be >= 1, got {every_n_epochs}")
        if max_cells < 2:
            raise ValueError(f"OnlineEvalCallback: max_cells must be >= 2, got {max_cells}")
        if k < 1 or temperature <= 0:
            raise ValueError(f"OnlineEvalCallback: need k >= 1 and temperature > 0, got k={k}, {temperature=}")
        self.every_n_epochs = every_n_epochs
        self.max_cells = max_cells
        self.label_key = label_key
        self.k = k
        self.temperature = temperature
        self.last_embeddings: EmbeddingTable | None = None
        self._batches: list[EmbeddingBatch] = []
        self._collected = 0

    def _active(self, trainer: Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Silence Lightning's advice to sync the ``eval/*`` values: they are computed once, on rank 0."""
        warnings.filterwarnings(
            "ignore", message=r"It is recommended to use `self.log\('eval/", category=PossibleUserWarning
        )

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start a new collection."""
        self._batches, self._collected = [], 0

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's anchor embeddings (on the CPU) until this rank has its share of ``max_cells``."""
        embeddings = getattr(pl_module, EMBEDDINGS_ATTRIBUTE, None)
        setattr(pl_module, EMBEDDINGS_ATTRIBUTE, None)
        share = math.ceil(self.max_cells / trainer.world_size)
        if embeddings is None or not self._active(trainer) or self._collected >= share:
            return
        index = {key: to_numpy(value) for key, value in embeddings["index"].items()}
        size = len(embeddings["features"])
        if DATASET_INDEX_KEY not in index:  # no identity: keys as an unshuffled distributed sampler would order them
            positions = np.arange(self._collected, self._collected + size)
            index[DATASET_INDEX_KEY] = positions * trainer.world_size + trainer.global_rank
        dataset_indices = index[DATASET_INDEX_KEY]
        prediction = {
            "features": embeddings["features"].detach().float().cpu(),
            "projections": embeddings["projections"].detach().float().cpu(),
            "index": index,
        }
        self._batches.append(EmbeddingBatch(prediction, np.asarray(dataset_indices), dataloader_idx))
        self._collected += size

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Gather the collected embeddings on rank 0 and log the ``eval/*`` metrics there."""
        if not self._active(trainer):
            return
        table = assemble_table(self._batches, trainer.global_rank, trainer.world_size)
        self._batches = []
        gathered = gather_to_rank_zero(table)
        if gathered is None:
            return
        if not any(len(part.order_key) for part in gathered):
            _logger.warning(
                "OnlineEvalCallback: no validation embeddings were collected; does validation_step set "
                f"pl_module.{EMBEDDINGS_ATTRIBUTE}?"
            )
            return
        merged = self._subsample(merge_tables(gathered))
        self.last_embeddings = merged
        for name, value in self.compute_metrics(merged).items():
            pl_module.log(name, value, rank_zero_only=True, on_epoch=True)

    def _subsample(self, table: EmbeddingTable) -> EmbeddingTable:
        if len(table.features) <= self.max_cells:
            return table
        rows = np.sort(np.random.default_rng(_SEED).choice(len(table.features), self.max_cells, replace=False))
        projections = table.projections[rows] if table.projections is not None else None
        index = table.index.iloc[rows].reset_index(drop=True)
        return EmbeddingTable(table.features[rows], projections, index, table.order_key[rows])

    def compute_metrics(self, table: EmbeddingTable) -> dict[str, float]:
        """The ``eval/*`` metrics of one gathered table (the metrics whose inputs are missing are left out)."""
        metrics = {"eval/effective_rank": effective_rank(table.features)}
        if table.projections is not None:
            metrics["eval/effective_rank_projections"] = effective_rank(table.projections)
        index = table.index
        if "t" in index and ("global_track_id" in index or "track_id" in index):
            smoothness = temporal_smoothness(table.features, _track_keys(index), index["t"], seed=_SEED)
            metrics["eval/temporal_smoothness"] = smoothness.spearman
            metrics["eval/adjacent_to_random_ratio"] = smoothness.adjacent_to_random_ratio
        if self.label_key is not None:
            metrics.update(self._label_metrics(table))
        return metrics

    def _label_metrics(self, table: EmbeddingTable) -> dict[str, float]:
        index = table.index
        missing = [c for c in (self.label_key, "fov_name") if c not in index]
        if missing:
            raise KeyError(
                f"OnlineEvalCallback(label_key={self.label_key!r}): the validation batch index lacks {missing}; "
                f"it has {sorted(index.columns)}. Add the column to the tracks tables."
            )
        labels = index[self.label_key]
        known = (labels.notna() & ~labels.isin(_UNKNOWN_LABELS)).to_numpy()
        fovs = index["fov_name"].to_numpy()[known]
        if len(np.unique(fovs)) < 2:
            _logger.warning("OnlineEvalCallback: fewer than 2 labelled FOVs in validation; no k-NN or probe.")
            return {}
        features, labels = table.features[known], labels.to_numpy()[known]
        test = fov_split(fovs, seed=_SEED)
        if len(np.unique(labels[~test])) < 2:
            _logger.warning("OnlineEvalCallback: the training FOVs hold one class only; no k-NN or probe.")
            return {}
        split = (features[~test], labels[~test], features[test], labels[test])
        return {
            "eval/knn_accuracy": weighted_knn_accuracy(*split, k=self.k, temperature=self.temperature),
            "eval/linear_probe_accuracy": linear_probe_accuracy(*split),
        }
