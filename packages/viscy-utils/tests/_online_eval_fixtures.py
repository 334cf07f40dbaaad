"""Tiny tracked cells and an embedding module for the OnlineEvalCallback tests (also run as a DDP script)."""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, Dataset

N_FEATURES = 8
N_PROJECTIONS = 3
N_FOVS = 4
TRACKS_PER_FOV = 4


class LabelledTracks(Dataset):
    """Cells on tracks of 5 frames; the label (track parity) sets a class direction, time adds a drift.

    Sample ``i`` is FOV ``i % N_FOVS``, so every FOV holds both labels, and the features of a cell
    are a deterministic function of ``i``.
    """

    def __init__(self, n_samples: int) -> None:
        rng = np.random.default_rng(0)
        i = np.arange(n_samples)
        self.fov = i % N_FOVS
        self.track = (i // N_FOVS) % TRACKS_PER_FOV
        self.t = i // (N_FOVS * TRACKS_PER_FOV)
        self.label = self.track % 2
        features = rng.normal(scale=0.1, size=(n_samples, N_FEATURES))
        features[:, 0] += np.where(self.label == 1, 3.0, -3.0)
        features[:, 1] += 0.5 * self.t
        features[:, 2] += self.track + 4 * self.fov
        self.features = torch.from_numpy(features.astype(np.float32))

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        index = {
            "fov_name": f"A/1/{self.fov[i]}",
            "track_id": int(self.track[i]),
            "t": int(self.t[i]),
            "infection_state": int(self.label[i]),
            "dataset_index": i,
        }
        return {"anchor": self.features[i], "index": index}


class LabelledTracksData(LightningDataModule):
    """The same cells for training and validation."""

    def __init__(self, n_samples: int, batch_size: int = 4) -> None:
        super().__init__()
        self.dataset = LabelledTracks(n_samples)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size)


class EmbeddingEcho(LightningModule):
    """Features are the input; ``validation_step`` stores them as ContrastiveModule does."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.validation_embeddings = None

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return (batch["anchor"] * self.scale).sum() * 0.0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        features = batch["anchor"] * self.scale
        self.validation_embeddings = {
            "features": features,
            "projections": features[:, :N_PROJECTIONS],
            "index": batch["index"],
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)
