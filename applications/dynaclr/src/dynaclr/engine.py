"""Lightning modules of DynaCLR: contrastive training and inference, and the beta-VAE baseline."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal, TypedDict

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from pytorch_metric_learning.losses import NTXentLoss
from torch import Tensor, nn

from dynaclr._checkpoint import load_checkpoint_weights
from dynaclr._finite_loss import raise_if_nonfinite_loss
from dynaclr._optim import LRSchedule, configure_adamw
from dynaclr.vae_logging import BetaVaeLogger
from viscy_data import TrackingIndex, TripletSample
from viscy_data.optional import install_command, require
from viscy_models.contrastive import ContrastiveEncoder
from viscy_utils.checkpoint import check_state_dict

__all__ = ["BetaVaeModule", "ContrastiveModule", "ContrastivePrediction"]

_logger = logging.getLogger(__name__)


class ContrastivePrediction(TypedDict):
    """Output of :meth:`ContrastiveModule.predict_step`, consumed by ``EmbeddingWriter``."""

    features: Tensor
    projections: Tensor
    index: TrackingIndex


def collate_index(index: TrackingIndex | list[dict]) -> TrackingIndex:
    """The tracking index as one dict of columns.

    Triplet datasets yield a list of per-sample dicts in predict mode; predictions carry the collated form.
    """
    if isinstance(index, dict):
        return index
    if not index:
        return {}
    return {key: [sample[key] for sample in index] for key in index[0]}


def log_image_samples(module: LightningModule, samples: list, tag: str) -> None:
    """Render collected ``detach_sample`` rows into one grid and log it with the logger's ``add_image``.

    Loggers without ``experiment.add_image`` (CSV, none) are skipped silently.
    """
    if not samples:
        return
    experiment = getattr(module.logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "add_image"):
        return
    from viscy_utils.log_images import render_images

    grid = render_images(samples, cmaps=["gray"] * len(samples[0]))
    experiment.add_image(tag, grid, module.current_epoch, dataformats="HWC")


class ContrastiveModule(LightningModule):
    """Contrastive learning of cell embeddings from (anchor, positive[, negative]) patches.

    Parameters
    ----------
    encoder : nn.Module | ContrastiveEncoder
        Module mapping ``(B, C, Z, Y, X)`` to a ``(features, projections)`` tuple; stored as ``model``.
    loss_function : nn.Module | None
        An NT-Xent style loss (``pytorch_metric_learning.losses.NTXentLoss`` or a subclass such as
        ``NTXentHCL``), called with ``(embeddings (2B, D), labels (2B,))`` and using in-batch negatives;
        or a triplet-style loss called with ``(anchor, positive, negative)`` projections.
        None (the default) for ``nn.TripletMarginLoss(margin=0.5)``.
    lr : float
        Peak learning rate of AdamW.
    schedule : {"WarmupCosine", "Constant"}
        Learning-rate schedule; ``"WarmupCosine"`` warms up linearly for ``warmup_epochs`` epochs and then
        decays with a half cosine per step.
    log_batches_per_epoch : int
        Number of batches per epoch whose images are logged.
    log_samples_per_batch : int
        Number of samples logged from each of those batches.
    log_embeddings : bool
        Log a 2-D UMAP of the validation projections at the end of each validation epoch
        (needs ``umap-learn`` and a TensorBoard logger).
    log_negative_metrics_every_n_epochs : int
        Epoch period of the in-batch negative metrics on the NT-Xent path.
    example_input_array_shape : Sequence[int]
        Shape of the example input used for graph logging and export.
    ckpt_path : str | None
        Lightning checkpoint whose ``state_dict`` is loaded strictly at construction.
    warmup_epochs : int
        Warmup length of the ``"WarmupCosine"`` schedule.
    """

    def __init__(
        self,
        encoder: nn.Module | ContrastiveEncoder,
        loss_function: nn.Module | nn.CosineEmbeddingLoss | nn.TripletMarginLoss | NTXentLoss | None = None,
        lr: float = 1e-3,
        schedule: LRSchedule = "Constant",
        log_batches_per_epoch: int = 8,
        log_samples_per_batch: int = 1,
        log_embeddings: bool = False,
        log_negative_metrics_every_n_epochs: int = 2,
        example_input_array_shape: Sequence[int] = (1, 2, 15, 256, 256),
        ckpt_path: str | None = None,
        warmup_epochs: int = 3,
    ) -> None:
        super().__init__()
        self.model = encoder
        self.loss_function = nn.TripletMarginLoss(margin=0.5) if loss_function is None else loss_function
        self.lr = lr
        self.schedule = schedule
        self.log_batches_per_epoch = log_batches_per_epoch
        self.log_samples_per_batch = log_samples_per_batch
        self.log_embeddings = log_embeddings
        self.log_negative_metrics_every_n_epochs = log_negative_metrics_every_n_epochs
        self.warmup_epochs = warmup_epochs
        self.example_input_array = torch.rand(*example_input_array_shape)
        self.training_step_outputs: list = []
        self.validation_step_outputs: list = []
        self._validation_projections: list[Tensor] = []
        # the last validation batch's anchor embeddings, read by viscy_utils.callbacks.OnlineEvalCallback
        self.validation_embeddings: ContrastivePrediction | None = None
        if ckpt_path is not None:
            load_checkpoint_weights(self, ckpt_path)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(features, projections)`` of a ``(B, C, Z, Y, X)`` batch."""
        return self.model(x)

    @property
    def _uses_ntxent(self) -> bool:
        return isinstance(self.loss_function, NTXentLoss)

    def _contrastive_step(self, batch: TripletSample, batch_idx: int, stage: Literal["train", "val"]) -> Tensor:
        anchor_img = batch["anchor"]
        pos_img = batch["positive"]
        anchor_features, anchor_proj = self(anchor_img)
        _, pos_proj = self(pos_img)
        negative_proj = None
        if self._uses_ntxent:
            embeddings = torch.cat([anchor_proj, pos_proj])
            # anchor i and positive i share label i; a loss with gather_distributed=True offsets labels per rank
            labels = torch.arange(anchor_proj.shape[0], device=embeddings.device).repeat(2)
            loss = self.loss_function(embeddings, labels)
            images = (anchor_img, pos_img)
        else:
            if "negative" not in batch:
                raise KeyError(
                    f"{type(self.loss_function).__name__} needs a 'negative' image in the batch "
                    f"(found keys {sorted(batch)}); enable return_negative in the data module "
                    "or use an NT-Xent loss"
                )
            neg_img = batch["negative"]
            _, negative_proj = self(neg_img)
            loss = self.loss_function(anchor_proj, pos_proj, negative_proj)
            images = (anchor_img, pos_img, neg_img)
        names = ("anchor", "positive", "negative")
        # the NT-Xent path has no negative image
        checked = {f"{name} images": image for name, image in zip(names, images, strict=False)}
        projections = (anchor_proj, pos_proj, negative_proj)
        checked |= {f"{name} projections": p for name, p in zip(names, projections, strict=True) if p is not None}
        raise_if_nonfinite_loss(self, {type(self.loss_function).__name__: loss}, stage, batch_idx, checked)
        self._log_metrics(loss, anchor_proj, pos_proj, stage, negative_proj)
        outputs = self.training_step_outputs if stage == "train" else self.validation_step_outputs
        if batch_idx < self.log_batches_per_epoch:
            from viscy_utils.log_images import detach_sample

            outputs.extend(detach_sample(images, self.log_samples_per_batch))
        if stage == "val" and self.log_embeddings:
            self._validation_projections.append(anchor_proj.detach().cpu())
        if stage == "val":
            index = collate_index(batch.get("index", {}))
            self.validation_embeddings = {"features": anchor_features, "projections": anchor_proj, "index": index}
        return loss

    def training_step(self, batch: TripletSample, batch_idx: int) -> Tensor:
        """Contrastive loss of one training batch."""
        return self._contrastive_step(batch, batch_idx, "train")

    def validation_step(self, batch: TripletSample, batch_idx: int) -> Tensor:
        """Contrastive loss of one validation batch."""
        return self._contrastive_step(batch, batch_idx, "val")

    def _log_metrics(
        self, loss: Tensor, anchor: Tensor, positive: Tensor, stage: str, negative: Tensor | None = None
    ) -> None:
        batch_size = anchor.shape[0]
        self.log(
            f"loss/{stage}",
            loss.detach(),
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            logger=True,
            sync_dist=True,
            batch_size=batch_size,
        )
        anchor = anchor.detach()
        positive = positive.detach()
        cosine_pos = F.cosine_similarity(anchor, positive, dim=1).mean()
        euclidean_pos = F.pairwise_distance(anchor, positive).mean()
        metrics = {
            f"metrics/cosine_similarity/positive/{stage}": cosine_pos,
            f"metrics/euclidean_distance/positive/{stage}": euclidean_pos,
        }
        if negative is not None:
            negative = negative.detach()
            metrics[f"metrics/cosine_similarity_negative/{stage}"] = F.cosine_similarity(anchor, negative, dim=1).mean()
            metrics[f"metrics/euclidean_distance_negative/{stage}"] = F.pairwise_distance(anchor, negative).mean()
        elif self._uses_ntxent and self.current_epoch % self.log_negative_metrics_every_n_epochs == 0:
            metrics.update(self._in_batch_negative_metrics(anchor, positive, cosine_pos, euclidean_pos, stage))
        self.log_dict(metrics, on_step=False, on_epoch=True, logger=True, sync_dist=True, batch_size=batch_size)

    @staticmethod
    def _in_batch_negative_metrics(
        anchor: Tensor, positive: Tensor, cosine_pos: Tensor, euclidean_pos: Tensor, stage: str
    ) -> dict[str, Tensor]:
        """Similarity of each anchor to the 2B-2 in-batch negatives (all but itself and its positive)."""
        batch_size = anchor.shape[0]
        if batch_size < 2:
            return {}
        candidates = torch.cat([anchor, positive])
        rows = torch.arange(batch_size, device=anchor.device)
        is_negative = torch.ones(batch_size, 2 * batch_size, dtype=torch.bool, device=anchor.device)
        is_negative[rows, rows] = False
        is_negative[rows, rows + batch_size] = False
        n_neg = 2 * batch_size - 2
        cosine = F.normalize(anchor, dim=1) @ F.normalize(candidates, dim=1).T
        cosine_neg = cosine[is_negative].view(batch_size, n_neg)
        distance_neg = torch.cdist(anchor, candidates)[is_negative].view(batch_size, n_neg)
        return {
            f"metrics/cosine_similarity/negative_mean/{stage}": cosine_neg.mean(),
            f"metrics/cosine_similarity/negative_sum/{stage}": cosine_neg.sum(dim=1).mean(),
            f"metrics/margin_positive/negative/{stage}": cosine_pos - cosine_neg.mean(),
            f"metrics/euclidean_distance/negative_mean/{stage}": distance_neg.mean(),
            f"metrics/euclidean_distance/negative_sum/{stage}": distance_neg.sum(dim=1).mean(),
            f"metrics/margin_euclidean_positive/negative/{stage}": distance_neg.mean() - euclidean_pos,
        }

    def on_train_epoch_end(self) -> None:
        """Log the collected training samples and clear them."""
        log_image_samples(self, self.training_step_outputs, "train_samples")
        self.training_step_outputs = []

    def on_validation_epoch_end(self) -> None:
        """Log the collected validation samples (and optionally a UMAP of projections) and clear them."""
        log_image_samples(self, self.validation_step_outputs, "val_samples")
        self.validation_step_outputs = []
        if self.log_embeddings and self._validation_projections:
            self.log_embedding_umap(torch.cat(self._validation_projections), tag="val_projections")
        self._validation_projections = []

    def log_embedding_umap(self, embeddings: Tensor, tag: str) -> None:
        """Log a 2-D UMAP of ``embeddings`` with the logger's ``add_embedding`` (TensorBoard)."""
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_embedding") or embeddings.shape[0] < 4:
            return
        umap = require("umap", "log_embeddings=True", install_command("dynaclr", "eval"))
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, embeddings.shape[0] - 1), random_state=42)
        coordinates = reducer.fit_transform(embeddings.float().numpy())
        experiment.add_embedding(torch.from_numpy(coordinates), global_step=self.current_epoch, tag=f"{tag}_umap")

    def configure_optimizers(self):
        """AdamW with the configured learning-rate schedule."""
        return configure_adamw(self, self.lr, self.schedule, self.warmup_epochs)

    def on_fit_start(self) -> None:
        """Check, before the first step, that the data module's channel count is the encoder's ``in_channels``.

        Compared where both are known: the encoder's ``in_channels`` attribute and the data module's
        ``num_channels`` (e.g. ``MultiExperimentDataModule``, after ``setup``).
        """
        expected = getattr(self.model, "in_channels", None)
        datamodule = getattr(self.trainer, "datamodule", None)
        found = getattr(datamodule, "num_channels", None)
        if isinstance(expected, int) and isinstance(found, int) and expected != found:
            raise ValueError(
                f"{type(datamodule).__name__} gives {found} channels per patch but the encoder "
                f"{type(self.model).__name__} has in_channels={expected}: set the encoder's in_channels to "
                f"{found}, or give the data {expected} source channels."
            )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Check the checkpoint's keys and shapes before Lightning loads them, naming the first mismatches."""
        if self.strict_loading and "state_dict" in checkpoint:
            source = self._trainer.ckpt_path if self._trainer is not None else None
            check_state_dict(self, checkpoint["state_dict"], str(source or "state_dict"))

    def predict_step(self, batch: TripletSample, batch_idx: int, dataloader_idx: int = 0) -> ContrastivePrediction:
        """Features and projections of the anchors, with their tracking index."""
        features, projections = self.model(batch["anchor"])
        return {"features": features, "projections": projections, "index": collate_index(batch["index"])}


class BetaVaeModule(LightningModule):
    """Beta-VAE training on the anchor images of triplet batches.

    Parameters
    ----------
    vae : nn.Module | BetaVae25D | BetaVaeMonai
        Model returning an object with ``recon_x``, ``mean``, ``logvar`` and ``z``; stored as ``model``.
    loss_function : nn.Module | None
        Reconstruction loss; None (the default) for ``nn.MSELoss(reduction="sum")``. ``nn.MSELoss`` is rescaled
        to a per-image sum averaged over the batch (``"sum"`` is divided by the batch size, ``"mean"``
        multiplied by the elements per image).
    beta : float
        Weight of the KL term (the final value of a schedule).
    beta_schedule : {"linear", "cosine", "warmup"} | None
        Ramp of beta from ``beta_min`` over ``beta_warmup_epochs`` epochs; None keeps ``beta``.
    beta_min : float
        Initial beta of a schedule.
    beta_warmup_epochs : int
        Length of the beta ramp in epochs.
    lr : float
        Peak learning rate of AdamW.
    lr_schedule : {"WarmupCosine", "Constant"}
        Learning-rate schedule (see :class:`ContrastiveModule`).
    log_batches_per_epoch : int
        Number of batches per epoch whose reconstructions are logged.
    log_samples_per_batch : int
        Number of samples logged from each of those batches.
    example_input_array_shape : Sequence[int]
        Shape of the example input.
    log_enhanced_visualizations : bool
        Log latent traversals, interpolations and the factor matrix at validation epoch ends.
    log_enhanced_visualizations_frequency : int
        Epoch period of those visualisations.
    warmup_epochs : int
        Warmup length of the ``"WarmupCosine"`` learning-rate schedule.
    """

    _min_beta = 1e-15
    _logvar_minmax = (-20, 20)
    _max_logged_reconstructions = 4

    def __init__(
        self,
        vae: nn.Module,
        loss_function: nn.Module | nn.MSELoss | None = None,
        beta: float = 1.0,
        beta_schedule: Literal["linear", "cosine", "warmup"] | None = None,
        beta_min: float = 0.1,
        beta_warmup_epochs: int = 50,
        lr: float = 1e-5,
        lr_schedule: LRSchedule = "Constant",
        log_batches_per_epoch: int = 8,
        log_samples_per_batch: int = 1,
        example_input_array_shape: Sequence[int] = (1, 2, 30, 256, 256),
        log_enhanced_visualizations: bool = False,
        log_enhanced_visualizations_frequency: int = 30,
        warmup_epochs: int = 3,
    ) -> None:
        super().__init__()
        if beta_schedule not in (None, "linear", "cosine", "warmup"):
            raise ValueError(f"beta_schedule must be 'linear', 'cosine', 'warmup' or None, got {beta_schedule!r}")
        self.model = vae
        self.loss_function = nn.MSELoss(reduction="sum") if loss_function is None else loss_function
        self.beta = beta
        self.beta_schedule = beta_schedule
        self.beta_min = beta_min
        self.beta_warmup_epochs = beta_warmup_epochs
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.log_batches_per_epoch = log_batches_per_epoch
        self.log_samples_per_batch = log_samples_per_batch
        self.log_enhanced_visualizations = log_enhanced_visualizations
        self.log_enhanced_visualizations_frequency = log_enhanced_visualizations_frequency
        self.warmup_epochs = warmup_epochs
        self.example_input_array = torch.rand(*example_input_array_shape)
        self.training_step_outputs: list = []
        self.validation_step_outputs: list = []
        self.vae_logger = BetaVaeLogger(self._latent_dim())

    def _latent_dim(self) -> int:
        for owner, name in ((self.model, "latent_dim"), (self.model, "latent_size")):
            if hasattr(owner, name):
                return int(getattr(owner, name))
        encoder = getattr(self.model, "encoder", None)
        if encoder is not None and hasattr(encoder, "latent_dim"):
            return int(encoder.latent_dim)
        _logger.warning("Could not find the VAE's latent dimension: using 128 for latent diagnostics.")
        return 128

    def setup(self, stage: str) -> None:
        """Move the latent diagnostics to the module's device."""
        self.vae_logger.setup(self.device)

    def _get_current_beta(self) -> float:
        """Beta of the current epoch under ``beta_schedule`` (never below 1e-15)."""
        epoch, warmup = self.current_epoch, self.beta_warmup_epochs
        beta = self.beta
        if self.beta_schedule is not None and epoch < warmup:
            progress = epoch / warmup
            if self.beta_schedule == "linear":
                beta = self.beta_min + (self.beta - self.beta_min) * progress
            elif self.beta_schedule == "cosine":
                beta = self.beta_min + (self.beta - self.beta_min) * 0.5 * (1 + math.cos(math.pi * (1 - progress)))
            else:
                beta = self.beta_min
        return max(beta, self._min_beta)

    def _reconstruction_loss(self, recon_x: Tensor, x: Tensor) -> Tensor:
        loss = self.loss_function(recon_x, x)
        if isinstance(self.loss_function, nn.MSELoss):
            if self.loss_function.reduction == "sum":
                loss = loss / x.shape[0]
            elif self.loss_function.reduction == "mean":
                loss = loss * x[0].numel()
        return loss

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Encode, decode and compute the loss terms of a ``(B, C, Z, Y, X)`` batch."""
        squeeze_depth = getattr(self.model, "spatial_dims", None) == 2 and x.ndim == 5 and x.shape[2] == 1
        output = self.model(x[:, :, 0] if squeeze_depth else x)
        recon_x = output.recon_x.unsqueeze(2) if squeeze_depth else output.recon_x
        mu, logvar = output.mean, output.logvar.clamp(*self._logvar_minmax)
        recon_loss = self._reconstruction_loss(recon_x, x)
        kl_loss = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(dim=1)).mean()
        total_loss = recon_loss + self._get_current_beta() * kl_loss
        return {
            "recon_x": recon_x,
            "z": output.z,
            "mu": mu,
            "logvar": logvar,
            "recon_loss": recon_loss,
            "kl_loss": kl_loss,
            "total_loss": total_loss,
        }

    def _vae_step(self, batch: TripletSample, batch_idx: int, stage: Literal["train", "val"]) -> Tensor:
        x = batch["anchor"]
        output = self(x)
        terms = {"reconstruction": output["recon_loss"], "kl": output["kl_loss"]}
        tensors = {"anchor": x, "reconstruction": output["recon_x"], "mu": output["mu"], "logvar": output["logvar"]}
        raise_if_nonfinite_loss(self, terms, stage, batch_idx, tensors)
        self.vae_logger.log_enhanced_metrics(self, output, batch, stage)
        if batch_idx < self.log_batches_per_epoch:
            from viscy_utils.log_images import detach_sample

            outputs = self.training_step_outputs if stage == "train" else self.validation_step_outputs
            outputs.extend(detach_sample((x, output["recon_x"]), self.log_samples_per_batch))
        return output["total_loss"]

    def training_step(self, batch: TripletSample, batch_idx: int) -> Tensor:
        """Total (reconstruction + beta * KL) loss of one training batch."""
        return self._vae_step(batch, batch_idx, "train")

    def validation_step(self, batch: TripletSample, batch_idx: int) -> Tensor:
        """Total loss of one validation batch."""
        return self._vae_step(batch, batch_idx, "val")

    def on_train_epoch_end(self) -> None:
        """Log up to 4 (original, reconstruction) pairs and clear them."""
        log_image_samples(self, self.training_step_outputs[: self._max_logged_reconstructions], "train_reconstructions")
        self.training_step_outputs = []

    def on_validation_epoch_end(self) -> None:
        """Log reconstructions and, periodically, the latent-space visualisations."""
        log_image_samples(self, self.validation_step_outputs[: self._max_logged_reconstructions], "val_reconstructions")
        self.validation_step_outputs = []
        epoch = self.current_epoch
        if self.log_enhanced_visualizations and epoch > 0 and epoch % self.log_enhanced_visualizations_frequency == 0:
            try:
                self.vae_logger.log_latent_traversal(self)
                self.vae_logger.log_latent_interpolation(self)
                self.vae_logger.log_factor_traversal_matrix(self)
            except (RuntimeError, ValueError) as error:
                _logger.error(f"Latent visualisations failed at epoch {epoch}: {error}")

    def configure_optimizers(self):
        """AdamW with the configured learning-rate schedule."""
        return configure_adamw(self, self.lr, self.lr_schedule, self.warmup_epochs)

    def predict_step(self, batch: TripletSample, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Latent code and reconstruction of the anchors, with their tracking index."""
        output = self(batch["anchor"])
        return {"latent": output["z"], "reconstruction": output["recon_x"], "index": collate_index(batch["index"])}
