"""Variational autoencoders (imported lazily)."""

from viscy_models._lazy import lazy_exports

__all__ = ["BetaVae25D", "BetaVaeMonai", "ConvVAE"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BetaVae25D": f"{__name__}.beta_vae_25d",
        "BetaVaeMonai": f"{__name__}.beta_vae_monai",
        "ConvVAE": f"{__name__}.conv_vae",
    },
)
