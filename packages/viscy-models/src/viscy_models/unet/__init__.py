"""Image-to-image networks for virtual staining (imported lazily)."""

import lazy_loader

__all__ = ["UNeXt2", "FullyConvolutionalMAE", "Unet2d", "Unet25d"]
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "fcmae": ["FullyConvolutionalMAE"],
        "unet2d": ["Unet2d"],
        "unet25d": ["Unet25d"],
        "unext2": ["UNeXt2"],
    },
)
