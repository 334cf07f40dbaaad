"""A tiny regression model, data module and callbacks for fit tests run in-process and by ``viscy fit``."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyRegression(LightningModule):
    """A linear layer trained with MSE; ``hidden`` changes the architecture (an extra layer)."""

    def __init__(self, in_features: int = 4, hidden: int | None = None) -> None:
        super().__init__()
        layers = (
            [nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1)] if hidden else [nn.Linear(in_features, 1)]
        )
        self.net = nn.Sequential(*layers)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class RandomRegressionData(LightningDataModule):
    """64 seeded random samples with ``in_features`` inputs, in batches of 4."""

    def __init__(self, in_features: int = 4) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.dataset = TensorDataset(
            torch.randn(64, in_features, generator=generator), torch.randn(64, 1, generator=generator)
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=4)


class SlowBatches(Callback):
    """Counts the training batches this run trained, writes the count to ``count_file``, then sleeps ``delay`` s."""

    def __init__(self, count_file: str | None = None, delay: float = 0.0) -> None:
        self.count_file = count_file
        self.delay = delay
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        if self.count_file is not None:
            Path(self.count_file).write_text(str(self.batches))
        time.sleep(self.delay)
