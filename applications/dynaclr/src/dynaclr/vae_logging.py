"""Diagnostics of beta-VAE training: loss terms, gradients, latent statistics and decoder visualisations."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

__all__ = ["BetaVaeLogger"]

_logger = logging.getLogger(__name__)

_ACTIVE_DIM_VARIANCE = 0.01
_HISTOGRAM_EPOCH_PERIOD = 10
_MAX_HISTOGRAM_DIMS = 16


def _norm_of(tensors: list[Tensor]) -> Tensor:
    """L2 norm of all entries of ``tensors`` together (0 when empty)."""
    if not tensors:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.detach().float()) for t in tensors]))


def _mid_slice_grid(images: Tensor, nrow: int) -> Tensor:
    """Grid (CHW) of the middle z-slice of the first channel of ``(N, C, Z, Y, X)`` images, min-max scaled."""
    from torchvision.utils import make_grid

    if images.ndim == 5:
        images = images[:, :1, images.shape[2] // 2]
    else:
        images = images[:, :1]
    images = images.detach().float().cpu()
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    images = (images - low) / (high - low).clamp_min(1e-8)
    return make_grid(images, nrow=nrow, padding=1)


class BetaVaeLogger:
    """Logs beta-VAE metrics and latent-space visualisations through a LightningModule.

    Parameters
    ----------
    latent_dim : int
        Size of the latent space (used for utilisation and for sampling latent codes).
    """

    def __init__(self, latent_dim: int = 128) -> None:
        self.latent_dim = latent_dim
        self.device: torch.device | str = "cpu"

    def setup(self, device: torch.device | str) -> None:
        """Set the device on which latent codes are sampled."""
        self.device = device

    def log_enhanced_metrics(
        self, lightning_module: LightningModule, model_output: dict, batch: dict, stage: str = "train"
    ) -> None:
        """Log loss terms, gradient and parameter norms, NaN checks and latent statistics for one step.

        Parameters
        ----------
        lightning_module : LightningModule
            The module being trained (its ``model`` parameters are inspected).
        model_output : dict
            ``BetaVaeModule.forward`` output (``recon_x, z, mu, logvar, recon_loss, kl_loss, total_loss``).
        batch : dict
            The batch, with the input images under ``"anchor"``.
        stage : str
            ``"train"`` or ``"val"``.
        """
        recon = model_output["recon_x"].detach()
        mu = model_output["mu"].detach()
        x = batch["anchor"]
        beta = lightning_module._get_current_beta() if hasattr(lightning_module, "_get_current_beta") else 1.0
        metrics = {
            f"loss/{stage}/total": model_output["total_loss"].detach(),
            f"loss/{stage}/reconstruction": model_output["recon_loss"].detach(),
            f"loss/{stage}/kl": model_output["kl_loss"].detach(),
            f"beta/{stage}": float(beta),
            "diagnostics/recon_has_nan": float(torch.isnan(recon).any()),
            "diagnostics/recon_has_inf": float(torch.isinf(recon).any()),
            "diagnostics/input_has_nan": float(torch.isnan(x).any()),
            "diagnostics/latent_has_nan": float(torch.isnan(mu).any()),
            "diagnostics/recon_max_val": recon.max().float(),
            "diagnostics/recon_min_val": recon.min().float(),
        }
        named = list(lightning_module.model.named_parameters())
        for part in ("encoder", "decoder"):
            params = [p for name, p in named if part in name]
            metrics[f"diagnostics/{part}_grad_norm"] = _norm_of([p.grad for p in params if p.grad is not None])
            metrics[f"diagnostics/{part}_param_norm"] = _norm_of(params)
        metrics.update(self._latent_statistics(mu, stage))
        lightning_module.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=x.shape[0])
        if stage == "val" and lightning_module.current_epoch % _HISTOGRAM_EPOCH_PERIOD == 0:
            self._log_latent_histograms(lightning_module, mu, stage)

    def _latent_statistics(self, mu: Tensor, stage: str) -> dict[str, Tensor]:
        """Per-dimension mean/std of the posterior means over the batch, and how many dimensions are used."""
        mu = mu.float().flatten(1)
        mean = mu.mean(dim=0)
        std = mu.std(dim=0, unbiased=False)
        variance = std**2
        active = (variance > _ACTIVE_DIM_VARIANCE).sum().float()
        effective = variance.sum() ** 2 / (variance**2).sum().clamp_min(1e-12)
        return {
            f"latent_statistics/mean_avg/{stage}": mean.mean(),
            f"latent_statistics/std_avg/{stage}": std.mean(),
            f"latent_statistics/mean_max/{stage}": mean.abs().max(),
            f"latent_statistics/std_max/{stage}": std.max(),
            f"latent_statistics/active_dims/{stage}": active,
            f"latent_statistics/effective_dim/{stage}": effective,
            f"latent_statistics/utilization/{stage}": active / self.latent_dim,
        }

    @staticmethod
    def _log_latent_histograms(lightning_module: LightningModule, mu: Tensor, stage: str) -> None:
        experiment = getattr(lightning_module.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_histogram"):
            return
        mu = mu.flatten(1).float().cpu()
        for dim in range(min(_MAX_HISTOGRAM_DIMS, mu.shape[1])):
            tag = f"latent_distributions/dim_{dim}_{stage}"
            experiment.add_histogram(tag, mu[:, dim], lightning_module.current_epoch)

    def _decoder(self, lightning_module: LightningModule) -> Callable | None:
        decoder = getattr(lightning_module.model, "decoder", None)
        if decoder is None:
            _logger.warning("The VAE has no 'decoder' attribute: skipping latent visualisations.")
        return decoder

    def _generator(self) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(0)

    def _add_image(self, lightning_module: LightningModule, tag: str, grid: Tensor) -> None:
        experiment = getattr(lightning_module.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image(tag, grid, lightning_module.current_epoch, dataformats="CHW")

    @torch.no_grad()
    def log_latent_traversal(
        self, lightning_module: LightningModule, n_dims: int = 8, n_steps: int = 11, range_vals=(-3, 3)
    ) -> None:
        """Decode a random latent code with one dimension swept over ``range_vals``, one image per dimension."""
        decoder = self._decoder(lightning_module)
        if decoder is None:
            return
        base = torch.randn(1, self.latent_dim, generator=self._generator())
        sweep = torch.linspace(range_vals[0], range_vals[1], n_steps)
        for dim in range(min(n_dims, self.latent_dim)):
            z = base.repeat(n_steps, 1)
            z[:, dim] = sweep
            images = decoder(z.to(self.device))
            self._add_image(lightning_module, f"latent_traversal/dim_{dim}", _mid_slice_grid(images, nrow=n_steps))

    @torch.no_grad()
    def log_latent_interpolation(self, lightning_module: LightningModule, n_pairs: int = 3, n_steps: int = 11) -> None:
        """Decode straight-line interpolations between pairs of random latent codes."""
        decoder = self._decoder(lightning_module)
        if decoder is None:
            return
        generator = self._generator()
        weights = torch.linspace(0, 1, n_steps).unsqueeze(1)
        for pair in range(n_pairs):
            start, end = torch.randn(2, self.latent_dim, generator=generator)
            z = (1 - weights) * start + weights * end
            images = decoder(z.to(self.device))
            self._add_image(lightning_module, f"latent_interpolation/pair_{pair}", _mid_slice_grid(images, n_steps))

    @torch.no_grad()
    def log_factor_traversal_matrix(self, lightning_module: LightningModule, n_dims: int = 8, n_steps: int = 7) -> None:
        """One grid whose rows sweep one latent dimension each (from -3 to 3) around the zero code."""
        decoder = self._decoder(lightning_module)
        if decoder is None:
            return
        n_dims = min(n_dims, self.latent_dim)
        z = torch.zeros(n_dims, n_steps, self.latent_dim)
        z[torch.arange(n_dims), :, torch.arange(n_dims)] = torch.linspace(-3, 3, n_steps)
        images = decoder(z.view(n_dims * n_steps, self.latent_dim).to(self.device))
        self._add_image(lightning_module, "factor_traversal_matrix", _mid_slice_grid(images, nrow=n_steps))

    def log_beta_schedule(
        self, lightning_module: LightningModule, beta_schedule: Callable[[int], float] | None = None
    ) -> float:
        """Log (as ``"beta_schedule"``) and return the beta of the current epoch.

        Without ``beta_schedule`` the schedule is 0.1 for the first 10% of ``max_epochs``, then a linear ramp
        to 4.0 at 50%, then 4.0.
        """
        epoch = lightning_module.current_epoch
        if beta_schedule is not None:
            beta = float(beta_schedule(epoch))
        else:
            max_epochs = max(1, lightning_module.trainer.max_epochs or 1)
            low_end, ramp_end = 0.1 * max_epochs, 0.5 * max_epochs
            if epoch < low_end:
                beta = 0.1
            elif epoch < ramp_end:
                beta = 0.1 + (4.0 - 0.1) * (epoch - low_end) / max(ramp_end - low_end, math.ulp(1.0))
            else:
                beta = 4.0
        lightning_module.log("beta_schedule", beta)
        return beta
