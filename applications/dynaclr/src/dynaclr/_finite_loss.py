"""Stop training with a clear error when a loss becomes NaN or infinite."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

__all__ = ["raise_if_nonfinite_loss"]


def raise_if_nonfinite_loss(
    module: LightningModule, terms: dict[str, Tensor], stage: str, batch_idx: int, tensors: dict[str, Tensor]
) -> None:
    """Raise ``FloatingPointError`` if a loss term is not finite (one host sync per step).

    Parameters
    ----------
    module : LightningModule
        Module being trained (its epoch and global step are reported).
    terms : dict[str, Tensor]
        Loss terms by name, e.g. ``{"NTXentHCL": loss}`` or ``{"reconstruction": r, "kl": k}``.
    stage : str
        ``"train"`` or ``"val"``.
    batch_idx : int
        Index of the batch in the epoch.
    tensors : dict[str, Tensor]
        Inputs and outputs of the step, checked only when a term is non-finite, to say where the
        non-finite values first appear.
    """
    finite = torch.stack([torch.isfinite(term.detach()).all() for term in terms.values()])
    if bool(finite.all()):
        return
    bad_terms = [f"'{name}' = {term.detach().float().mean().item()}" for name, term in terms.items()]
    bad_tensors = [name for name, tensor in tensors.items() if not bool(torch.isfinite(tensor.detach()).all())]
    origin = f"non-finite values in {bad_tensors}" if bad_tensors else "inputs and outputs are finite"
    raise FloatingPointError(
        f"{type(module).__name__}: non-finite {stage} loss at epoch {module.current_epoch}, batch {batch_idx} "
        f"(global step {module.global_step}): loss terms {', '.join(bad_terms)}; {origin}. "
        "Check the data (nonfinite='raise' on the data module), the normalization and the learning rate."
    )
