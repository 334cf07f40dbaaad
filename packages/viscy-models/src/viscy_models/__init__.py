"""viscy_models: neural network architectures for virtual staining and representation learning."""

from importlib.metadata import PackageNotFoundError, version

from viscy_models._lazy import lazy_exports

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
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BetaVae25D": "viscy_models.vae.beta_vae_25d",
        "BetaVaeMonai": "viscy_models.vae.beta_vae_monai",
        "ContrastiveEncoder": "viscy_models.contrastive.encoder",
        "FullyConvolutionalMAE": "viscy_models.unet.fcmae",
        "ResNet3dEncoder": "viscy_models.contrastive.resnet3d",
        "UNeXt2": "viscy_models.unet.unext2",
        "Unet2d": "viscy_models.unet.unet2d",
        "Unet25d": "viscy_models.unet.unet25d",
    },
)
