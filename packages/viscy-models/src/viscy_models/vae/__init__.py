"""Variational autoencoders (imported lazily)."""

import lazy_loader

__all__ = ["BetaVae25D", "BetaVaeMonai", "ConvVAE"]
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={"beta_vae_25d": ["BetaVae25D"], "beta_vae_monai": ["BetaVaeMonai"], "conv_vae": ["ConvVAE"]},
)
