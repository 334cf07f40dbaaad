"""Contrastive encoders and losses (imported lazily)."""

from viscy_models._lazy import lazy_exports

__all__ = ["ContrastiveEncoder", "ResNet3dEncoder"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"ContrastiveEncoder": f"{__name__}.encoder", "ResNet3dEncoder": f"{__name__}.resnet3d"},
)
