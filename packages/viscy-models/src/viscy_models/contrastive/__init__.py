"""Contrastive encoders and losses (imported lazily)."""

import lazy_loader

__all__ = ["ContrastiveEncoder", "ResNet3dEncoder"]
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__, submod_attrs={"encoder": ["ContrastiveEncoder"], "resnet3d": ["ResNet3dEncoder"]}
)
