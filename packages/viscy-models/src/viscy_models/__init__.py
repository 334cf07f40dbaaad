"""viscy_models: neural network architectures for virtual staining and representation learning."""

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

try:
    __version__ = version("viscy-models")
except PackageNotFoundError:
    __version__ = "0.0.0"

__all__ = [
    "BetaVae25D",
    "BetaVaeMonai",
    "ContrastiveEncoder",
    "FullyConvolutionalMAE",
    "ResNet3dEncoder",
    "UNeXt2",
    "Unet2d",
    "Unet25d",
]
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "contrastive.encoder": ["ContrastiveEncoder"],
        "contrastive.resnet3d": ["ResNet3dEncoder"],
        "unet.fcmae": ["FullyConvolutionalMAE"],
        "unet.unet2d": ["Unet2d"],
        "unet.unet25d": ["Unet25d"],
        "unet.unext2": ["UNeXt2"],
        "vae.beta_vae_25d": ["BetaVae25D"],
        "vae.beta_vae_monai": ["BetaVaeMonai"],
    },
)
