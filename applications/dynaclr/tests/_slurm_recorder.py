"""A callback for the simulated multi-node test: each rank records what it trained on, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch import Callback


class BatchRecorder(Callback):
    """Write ``rank-<global rank>.json`` with the rank layout, per-sample anchor sums and final weights.

    Parameters
    ----------
    output_dir : str
        Folder the JSON files are written to.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.anchor_sums: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.anchor_sums.extend(batch["anchor"].double().sum(dim=(1, 2, 3, 4)).tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        weights = torch.cat([p.detach().flatten() for p in pl_module.parameters()])
        record = {
            "global_rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "local_rank": trainer.local_rank,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "global_step": trainer.global_step,
            "anchor_sums": self.anchor_sums,
            "weights": weights.tolist(),
        }
        path = self.output_dir / f"rank-{trainer.global_rank}.json"
        path.write_text(json.dumps(record))
