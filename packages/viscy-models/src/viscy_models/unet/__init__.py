"""Image-to-image networks for virtual staining (imported lazily)."""

from viscy_models._lazy import lazy_exports

__all__ = ["UNeXt2", "FullyConvolutionalMAE", "Unet2d", "Unet25d"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "UNeXt2": f"{__name__}.unext2",
        "FullyConvolutionalMAE": f"{__name__}.fcmae",
        "Unet2d": f"{__name__}.unet2d",
        "Unet25d": f"{__name__}.unet25d",
    },
)
