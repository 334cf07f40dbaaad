"""Run by test_engine in a subprocess: one DDP step (2 CPU ranks, gloo) with NTXentHCL(gather_distributed=True).

Prints the loss logged by rank 0 and the NT-Xent of the global batch computed in a single process.
"""

import sys

import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dynaclr.engine import ContrastiveModule
from dynaclr.loss import NTXentHCL

TEMPERATURE = 0.5


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.projection = nn.Linear(12, 4)

    def forward(self, x):
        features = x.flatten(1)
        return features, self.projection(features)


class Views(Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.anchor = torch.rand(8, 1, 1, 3, 4, generator=generator)
        self.positive = self.anchor + 0.1 * torch.rand(8, 1, 1, 3, 4, generator=generator)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i):
        return {"anchor": self.anchor[i], "positive": self.positive[i]}


def reference_loss() -> float:
    views = Views()
    encoder = Encoder()
    with torch.no_grad():
        z = F.normalize(torch.cat([encoder(views.anchor)[1], encoder(views.positive)[1]]), dim=1)
    logits = z @ z.T / TEMPERATURE
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(8, 16), torch.arange(8)])
    return float(F.cross_entropy(logits, targets))


def main(root: str) -> None:
    module = ContrastiveModule(
        Encoder(),
        NTXentHCL(temperature=TEMPERATURE, beta=0.0, gather_distributed=True),
        lr=0.0,
        example_input_array_shape=(1, 1, 1, 3, 4),
    )
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    # each rank gets 4 of the 8 samples (DistributedSampler, no shuffle): the global batch is all 8
    trainer.fit(module, DataLoader(Views(), batch_size=4, shuffle=False))
    print(f"logged {float(trainer.callback_metrics['loss/train_epoch']):.6f}")
    print(f"reference {reference_loss():.6f}")


if __name__ == "__main__":
    main(sys.argv[1])
