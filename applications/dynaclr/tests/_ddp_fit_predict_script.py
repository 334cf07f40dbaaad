"""Run by test_integration_ddp in a subprocess: 2-process CPU DDP (gloo) fit, then predict to AnnData.

Usage: ``python _ddp_fit_predict_script.py EXPERIMENTS_YAML OUTPUT_DIR``. Lightning's DDP launcher
re-runs this script for rank 1. Fit uses ``MultiExperimentDataModule`` (FlexibleBatchSampler, every
sampling axis on, ``use_distributed_sampler=False``) with ``NTXentHCL(gather_distributed=True)``;
predict writes ``OUTPUT_DIR/embeddings.zarr`` with ``EmbeddingWriter``. Rank 0 saves the trained
weights to ``OUTPUT_DIR/weights.pt`` and prints one ``RESULT {json}`` line with what each rank saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from dynaclr_testing import TinyEncoder
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.strategies import DDPStrategy

from dynaclr.datamodule import MultiExperimentDataModule
from dynaclr.engine import ContrastiveModule
from dynaclr.loss import NTXentHCL
from viscy_utils.callbacks import EmbeddingWriter

MAX_STEPS = 3
PATCH = 16


class StepRecorder(Callback):
    """Per training step: the sum of the anchor batch this rank received."""

    def __init__(self) -> None:
        self.anchor_sums: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.anchor_sums.append(float(batch["anchor"].double().sum()))


def datamodule(experiments_yaml: str) -> MultiExperimentDataModule:
    """The datamodule of the DDP run (also used by the test for the single-process reference)."""
    return MultiExperimentDataModule(
        experiments_yaml=experiments_yaml,
        z_range=(0, 1),
        yx_patch_size=(PATCH, PATCH),
        final_yx_patch_size=(PATCH, PATCH),
        val_experiments=[],
        tau_range=(0.5, 1.0),
        batch_size=4,
        num_workers=0,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        leaky=0.25,
        channel_dropout_prob=0.0,
    )


def module() -> ContrastiveModule:
    torch.manual_seed(0)
    return ContrastiveModule(
        TinyEncoder(in_channels=2),
        loss_function=NTXentHCL(temperature=0.5, beta=0.5, gather_distributed=True),
        lr=1e-2,
        example_input_array_shape=(1, 2, 1, PATCH, PATCH),
    )


def main(experiments_yaml: str, output_dir: str) -> None:
    seed_everything(0)
    output = Path(output_dir)
    recorder = StepRecorder()
    writer = EmbeddingWriter(output / "embeddings.zarr", pca_kwargs=None, phate_kwargs=None)
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(process_group_backend="gloo"),
        use_distributed_sampler=False,
        max_steps=MAX_STEPS,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder, writer],
        default_root_dir=output,
    )
    model = module()
    data = datamodule(experiments_yaml)
    trainer.fit(model, datamodule=data)
    sampler = trainer.train_dataloader.batch_sampler
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    seen = {
        "rank": trainer.global_rank,
        "sampler": [sampler.num_replicas, sampler.rank],
        "global_step": trainer.global_step,
        "anchor_sums": recorder.anchor_sums,
        "weights": weights.tolist(),
    }
    gathered = [None] * trainer.world_size
    dist.all_gather_object(gathered, seen)
    if trainer.global_rank == 0:
        torch.save(model.state_dict(), output / "weights.pt")
    trainer.predict(model, datamodule=data, return_predictions=False)
    if trainer.global_rank == 0:
        print("RESULT " + json.dumps({"world_size": trainer.world_size, "ranks": gathered}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
