"""Save a resumable ``last.ckpt`` when a fit is stopped with SIGTERM (e.g. at a SLURM time limit).

Lightning catches SIGTERM, finishes the current batch and raises ``SIGTERMException``; by default
no checkpoint is written at that point. :class:`SigtermCheckpoint` writes one, named
``last.ckpt``, in the folder of every ``ModelCheckpoint``, where ``ckpt_path="last"`` (``viscy fit
--ckpt_path last``) finds it. ``VisCyTrainer.fit`` adds this callback when it is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

__all__ = ["SigtermCheckpoint"]

_logger = logging.getLogger(__name__)


class SigtermCheckpoint(Callback):
    """On ``SIGTERMException`` during fit, save ``last.ckpt`` in each ``ModelCheckpoint``'s folder."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Save the resumable checkpoint if the fit was stopped by SIGTERM."""
        fitting = trainer.state.fn == TrainerFn.FITTING
        if not isinstance(exception, SIGTERMException) or not fitting or trainer.sanity_checking:
            return
        folders = {cb.dirpath for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)}
        folders.discard(None)
        if not folders:
            _logger.warning("SIGTERM received but no ModelCheckpoint is configured: no checkpoint was saved.")
            return
        for folder in sorted(folders):
            path = Path(folder) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
            trainer.save_checkpoint(path)
            _logger.info(f"SIGTERM: saved {path} at global step {trainer.global_step}; resume with ckpt_path='last'.")
