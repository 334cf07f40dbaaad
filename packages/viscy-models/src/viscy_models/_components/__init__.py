"""Building blocks shared by the viscy-models networks (imported lazily)."""

from viscy_models._lazy import lazy_exports

_MODULES = {
    "ConvBlock2D": "conv_block_2d",
    "ConvBlock3D": "conv_block_3d",
    "UNeXt2Stem": "stems",
    "StemDepthtoChannels": "stems",
    "PixelToVoxelHead": "heads",
    "UnsqueezeHead": "heads",
    "PixelToVoxelShuffleHead": "heads",
    "icnr_init": "blocks",
    "UNeXt2UpStage": "blocks",
    "UNeXt2Decoder": "blocks",
}
__all__ = list(_MODULES)
__getattr__, __dir__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _MODULES.items()})
