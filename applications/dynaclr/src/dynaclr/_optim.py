"""Optimizer and learning-rate schedule shared by the DynaCLR Lightning modules."""

from __future__ import annotations

import math
from typing import Literal

import torch
from lightning.pytorch import LightningModule
from torch.optim.lr_scheduler import LambdaLR

LRSchedule = Literal["WarmupCosine", "Constant"]


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear warmup to 1, then a half-cosine decay to 0.

    Parameters
    ----------
    step : int
        Optimizer step (0-based).
    warmup_steps : int
        Number of warmup steps; the factor at step ``s < warmup_steps`` is ``(s + 1) / warmup_steps``.
    total_steps : int
        Total number of optimizer steps; the factor reaches 0 at ``total_steps``.

    Returns
    -------
    float
        Multiplier in ``[0, 1]``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def configure_adamw(module: LightningModule, lr: float, schedule: LRSchedule, warmup_epochs: int):
    """AdamW over the module's parameters, optionally with a per-step warmup-cosine schedule.

    Parameters
    ----------
    module : LightningModule
        Module attached to a trainer (the schedule length comes from the trainer).
    lr : float
        Peak learning rate.
    schedule : {"WarmupCosine", "Constant"}
        ``"Constant"`` keeps ``lr``; ``"WarmupCosine"`` warms up linearly for ``warmup_epochs`` epochs
        and then decays with a half cosine to 0 at the last training step.
    warmup_epochs : int
        Length of the warmup in epochs (converted to steps with the trainer's steps per epoch).

    Returns
    -------
    torch.optim.Optimizer | dict
        The optimizer, or Lightning's optimizer/scheduler dict with a per-step scheduler.
    """
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr)
    if schedule == "Constant":
        return optimizer
    if schedule != "WarmupCosine":
        raise ValueError(f"schedule must be 'WarmupCosine' or 'Constant', got {schedule!r}")
    trainer = module.trainer
    total_steps = trainer.estimated_stepping_batches
    if not math.isfinite(total_steps):
        raise ValueError("schedule='WarmupCosine' needs a finite training length: set trainer.max_epochs or max_steps")
    total_steps = int(total_steps)
    max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    steps_per_epoch = max(1, math.ceil(total_steps / max_epochs))
    warmup_steps = min(max(0, warmup_epochs) * steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup_steps, total_steps)

    scheduler = LambdaLR(optimizer, lr_lambda=factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
