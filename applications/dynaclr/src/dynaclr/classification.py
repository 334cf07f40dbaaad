"""Binary classification (linear probing or fine-tuning) on top of a contrastive encoder's backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor, nn
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score

from viscy_models.contrastive import ContrastiveEncoder

__all__ = ["ClassificationModule", "ClassificationPredictionWriter"]

_EXAMPLE_BATCHES = 4


class ClassificationPredictionWriter(BasePredictionWriter):
    """Write ``ClassificationModule`` predictions of one epoch to a CSV file.

    Parameters
    ----------
    output_path : Path
        CSV file to create; it must not exist.
    """

    def __init__(self, output_path: Path) -> None:
        super().__init__(write_interval="epoch")
        self.output_path = Path(output_path)
        if self.output_path.exists():
            raise FileExistsError(f"Output path {self.output_path} already exists.")

    def write_on_epoch_end(self, trainer: Trainer, pl_module: LightningModule, predictions, batch_indices) -> None:
        """Concatenate the prediction dicts (one row per cell) and write them as CSV."""
        import pandas as pd

        frames = []
        for prediction in predictions:
            columns = {
                key: value.detach().cpu().numpy().reshape(-1) if isinstance(value, Tensor) else np.asarray(value)
                for key, value in prediction.items()
            }
            frames.append(pd.DataFrame(columns))
        pd.concat(frames, ignore_index=True).to_csv(self.output_path, index=False)


def _classifier_slot(backbone: nn.Module) -> tuple[nn.Module, str]:
    """The module and attribute name of a timm backbone's final classifier (``head.fc`` or ``fc``)."""
    head = getattr(backbone, "head", None)
    if head is not None and hasattr(head, "fc"):
        return head, "fc"
    if hasattr(backbone, "fc"):
        return backbone, "fc"
    raise ValueError(f"cannot find the classifier of backbone {type(backbone).__name__} (expected head.fc or fc)")


class ClassificationModule(LightningModule):
    """Binary classifier: the encoder's stem and backbone with a one-logit linear head.

    Parameters
    ----------
    encoder : ContrastiveEncoder
        Source of ``stem`` and ``encoder`` (the backbone); its projection head is not used.
    lr : float | None
        Learning rate of AdamW (None uses AdamW's default, 1e-3).
    loss : nn.Module | None
        Loss of logits (B, 1) against float labels (B, 1); None (the default) for
        ``nn.BCEWithLogitsLoss(pos_weight=torch.tensor(1.0))``.
    example_input_array_shape : tuple[int, ...]
        Shape of the example input.
    """

    def __init__(
        self,
        encoder: ContrastiveEncoder,
        lr: float | None,
        loss: nn.Module | None = None,
        example_input_array_shape: tuple[int, ...] = (2, 1, 15, 160, 160),
    ) -> None:
        super().__init__()
        self.stem = encoder.stem
        self.backbone = encoder.encoder
        owner, name = _classifier_slot(self.backbone)
        setattr(owner, name, nn.Linear(self.backbone.num_features, 1))
        self.loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(1.0)) if loss is None else loss
        self.lr = lr
        self.example_input_array = torch.rand(*example_input_array_shape)
        self.train_examples: list[np.ndarray] = []
        self.val_examples: list[np.ndarray] = []

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, 1) of a ``(B, C, Z, Y, X)`` batch."""
        return self.backbone(self.stem(x))

    def on_fit_start(self) -> None:
        """Reset the example images."""
        self.train_examples = []
        self.val_examples = []

    def _fit_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, stage: str) -> Tensor:
        x, y = batch
        y_hat = self(x)
        if y.shape != y_hat.shape:
            raise ValueError(f"labels must have the logits' shape {tuple(y_hat.shape)}, got {tuple(y.shape)}")
        loss = self.loss(y_hat, y.float())
        batch_size = x.shape[0]
        self.log(f"loss/{stage}", loss, on_step=stage == "train", on_epoch=True, batch_size=batch_size)
        target = y.int()
        self.log_dict(
            {
                f"metric/accuracy/{stage}": binary_accuracy(y_hat, target),
                f"metric/f1_score/{stage}": binary_f1_score(y_hat, target),
            },
            on_step=False,
            on_epoch=True,
            batch_size=batch_size,
        )
        if batch_idx < _EXAMPLE_BATCHES:
            examples = self.train_examples if stage == "train" else self.val_examples
            examples.append(x[0, 0, x.shape[2] // 2].detach().float().cpu().numpy())
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Loss of one training batch."""
        return self._fit_step(batch, batch_idx, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Loss of one validation batch."""
        return self._fit_step(batch, batch_idx, "val")

    def _log_examples(self, examples: list[np.ndarray], stage: str) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if examples and experiment is not None and hasattr(experiment, "add_image"):
            from viscy_utils.log_images import render_images

            grid = render_images([[image] for image in examples], cmaps=["gray"])
            experiment.add_image(f"{stage}/examples", grid, self.current_epoch, dataformats="HWC")

    def on_train_epoch_end(self) -> None:
        """Log the training examples and clear them."""
        self._log_examples(self.train_examples, "train")
        self.train_examples = []

    def on_validation_epoch_end(self) -> None:
        """Log the validation examples and clear them."""
        self._log_examples(self.val_examples, "val")
        self.val_examples = []

    def predict_step(self, batch: tuple[Tensor, Tensor, dict], batch_idx: int, dataloader_idx: int = 0) -> dict:
        """The batch's index dict with ``label`` and ``prediction`` (sigmoid probability) added."""
        x, y, indices = batch
        indices["label"] = y
        indices["prediction"] = torch.sigmoid(self(x))
        return indices

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW at ``lr``."""
        return torch.optim.AdamW(self.parameters(), lr=1e-3 if self.lr is None else self.lr)
