"""Losses for :class:`viscy_models.vae.ConvVAE` (work for any channel count)."""

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["compute_kl_divergence", "vae_loss"]


def _kl_per_batch(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dimensions, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def vae_loss(
    recon: Tensor, target: Tensor, mu: Tensor, logvar: Tensor, kl_weight: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean-squared reconstruction error plus weighted KL divergence.

    Parameters
    ----------
    recon, target : Tensor
        (B, C, H, W) reconstruction and input, any C.
    mu, logvar : Tensor
        (B, latent_dim) posterior parameters.
    kl_weight : float
        Weight of the KL term (beta).

    Returns
    -------
    tuple[Tensor, Tensor, Tensor]
        ``(total, recon_loss, kl_loss)`` with ``total = recon_loss + kl_weight * kl_loss``.
    """
    if recon.shape != target.shape:
        raise ValueError(f"vae_loss: recon shape {tuple(recon.shape)} != target shape {tuple(target.shape)}")
    if mu.shape != logvar.shape:
        raise ValueError(f"vae_loss: mu shape {tuple(mu.shape)} != logvar shape {tuple(logvar.shape)}")
    recon_loss = F.mse_loss(recon, target, reduction="mean")
    kl_loss = _kl_per_batch(mu, logvar)
    return recon_loss + kl_weight * kl_loss, recon_loss, kl_loss


@torch.no_grad()
def compute_kl_divergence(mu: Tensor, logvar: Tensor) -> float:
    """Batch-mean KL divergence to the standard normal prior, as a Python float."""
    return float(_kl_per_batch(mu, logvar))
