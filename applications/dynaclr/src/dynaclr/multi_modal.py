"""CLIP-style joint contrastive learning between two channels (source and target) of the same cells."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from pytorch_metric_learning.losses import NTXentLoss
from torch import Tensor, nn

from dynaclr._optim import LRSchedule
from dynaclr.engine import ContrastiveModule, ContrastivePrediction, collate_index
from viscy_data import TripletSample

__all__ = ["JointContrastiveModule", "JointEncoders"]

_logger = logging.getLogger(__name__)

_ARM_CHANNELS = {"source": slice(0, 1), "target": slice(1, 2)}


class JointEncoders(nn.Module):
    """A pair of encoders, one per modality, each returning ``(features, projections)``.

    Parameters
    ----------
    source_encoder : nn.Module
        Encoder of the source channel.
    target_encoder : nn.Module
        Encoder of the target channel.
    """

    def __init__(self, source_encoder: nn.Module, target_encoder: nn.Module) -> None:
        super().__init__()
        self.source_encoder = source_encoder
        self.target_encoder = target_encoder

    def forward(self, source: Tensor, target: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """``(features, projections)`` of each modality."""
        return self.source_encoder(source), self.target_encoder(target)

    def forward_features(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Features of the source and of the target."""
        (source_features, _), (target_features, _) = self(source, target)
        return source_features, target_features

    def forward_projections(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Projections of the source and of the target."""
        (_, source_projections), (_, target_projections) = self(source, target)
        return source_projections, target_projections


class JointContrastiveModule(ContrastiveModule):
    """Contrastive alignment of two channels: channel 0 feeds the source encoder, channel 1 the target encoder.

    The loss is ``info_nce(anchor_source, anchor_target) + info_nce(positive_target, positive_source)``, where
    ``info_nce(z1, z2)`` calls the NT-Xent style ``loss_function`` with ``cat(z1, z2)`` and paired labels.

    Parameters
    ----------
    encoder : nn.Module | JointEncoders
        The two encoders.
    loss_function : nn.Module | None
        An NT-Xent style loss (``NTXentLoss`` or a subclass); other losses are rejected at the first step.
        None (the default) is :class:`~dynaclr.engine.ContrastiveModule`'s default.
    lr, schedule, log_batches_per_epoch, log_samples_per_batch, log_embeddings, example_input_array_shape
        As in :class:`~dynaclr.engine.ContrastiveModule`.
    embedding_log_frequency : int
        Epoch period of the validation UMAP when ``log_embeddings`` is set.
    prediction_arm : {"source", "target"}
        Which encoder (and channel) ``predict`` uses.
    ckpt_path : str | None
        Lightning checkpoint loaded strictly at construction.
    """

    def __init__(
        self,
        encoder: nn.Module | JointEncoders,
        loss_function: nn.Module | NTXentLoss | None = None,
        lr: float = 1e-3,
        schedule: LRSchedule = "Constant",
        log_batches_per_epoch: int = 8,
        log_samples_per_batch: int = 1,
        log_embeddings: bool = False,
        embedding_log_frequency: int = 10,
        example_input_array_shape: Sequence[int] = (1, 2, 15, 256, 256),
        prediction_arm: Literal["source", "target"] = "source",
        ckpt_path: str | None = None,
    ) -> None:
        if prediction_arm not in _ARM_CHANNELS:
            raise ValueError(f"Invalid prediction arm: expected 'source' or 'target', got {prediction_arm!r}")
        super().__init__(
            encoder=encoder,
            loss_function=loss_function,
            lr=lr,
            schedule=schedule,
            log_batches_per_epoch=log_batches_per_epoch,
            log_samples_per_batch=log_samples_per_batch,
            log_embeddings=log_embeddings,
            example_input_array_shape=example_input_array_shape,
            ckpt_path=ckpt_path,
        )
        self.embedding_log_frequency = embedding_log_frequency
        self.prediction_arm = prediction_arm
        self.example_input_array = (self.example_input_array, self.example_input_array)

    def forward(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Projections of the source and of the target."""
        return self.model.forward_projections(source, target)

    def _info_nce(self, z1: Tensor, z2: Tensor) -> Tensor:
        labels = torch.arange(z1.shape[0], device=z1.device).repeat(2)
        return self.loss_function(torch.cat([z1, z2]), labels)

    def _contrastive_step(self, batch: TripletSample, batch_idx: int, stage: Literal["train", "val"]) -> Tensor:
        if not self._uses_ntxent:
            raise TypeError(
                f"JointContrastiveModule needs an NT-Xent style loss (NTXentLoss or NTXentHCL), "
                f"got {type(self.loss_function).__name__}"
            )
        anchor, positive = batch["anchor"], batch["positive"]
        anchor_source, anchor_target = self(anchor[:, 0:1], anchor[:, 1:2])
        positive_source, positive_target = self(positive[:, 0:1], positive[:, 1:2])
        loss = self._info_nce(anchor_source, anchor_target) + self._info_nce(positive_target, positive_source)
        self._log_metrics(loss, anchor_source, anchor_target, stage)
        if batch_idx < self.log_batches_per_epoch:
            from viscy_utils.log_images import detach_sample

            outputs = self.training_step_outputs if stage == "train" else self.validation_step_outputs
            outputs.extend(detach_sample((anchor, positive), self.log_samples_per_batch))
        if stage == "val" and self.log_embeddings and self.current_epoch % self.embedding_log_frequency == 0:
            self._validation_projections.append(anchor_source.detach().cpu())
        return loss

    def on_predict_start(self) -> None:
        """Log which arm is used for prediction."""
        _logger.info(f"JointContrastiveModule predicts with the {self.prediction_arm} encoder.")

    def predict_step(self, batch: TripletSample, batch_idx: int, dataloader_idx: int = 0) -> ContrastivePrediction:
        """Features and projections of the chosen arm on its channel of the anchors."""
        encoder = self.model.source_encoder if self.prediction_arm == "source" else self.model.target_encoder
        features, projections = encoder(batch["anchor"][:, _ARM_CHANNELS[self.prediction_arm]])
        return {"features": features, "projections": projections, "index": collate_index(batch["index"])}
