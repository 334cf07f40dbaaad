"""A tiny prediction model and dataset shared by the EmbeddingWriter tests (also run as DDP script)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch.utils.data import Dataset

N_FEATURES = 6
N_PROJECTIONS = 3


class IndexedCells(Dataset):
    """Sample ``i`` has features ``i * 1.0`` everywhere, so rows identify themselves."""

    def __init__(self, n_samples: int) -> None:
        self.n_samples = n_samples

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, i: int) -> dict:
        return {
            "anchor": torch.full((N_FEATURES,), float(i)),
            "index": {"fov_name": f"/A/1/{i % 3}", "track_id": i // 4, "t": i % 4, "id": i},
        }


class EchoEmbedder(LightningModule):
    """Returns its input as features and the first three features times two as projections."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        features = batch["anchor"] * self.scale
        return {"features": features, "projections": 2 * features[:, :N_PROJECTIONS], "index": batch["index"]}
