"""Building blocks shared by the viscy-models networks (imported lazily)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "blocks": ["UNeXt2Decoder", "UNeXt2UpStage", "icnr_init"],
        "conv_block_2d": ["ConvBlock2D"],
        "conv_block_3d": ["ConvBlock3D"],
        "heads": ["PixelToVoxelHead", "PixelToVoxelShuffleHead", "UnsqueezeHead"],
        "stems": ["StemDepthtoChannels", "UNeXt2Stem"],
    },
)
