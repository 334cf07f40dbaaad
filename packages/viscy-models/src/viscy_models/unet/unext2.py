"""UNeXt2: a 2.5D U-Net with a timm ConvNeXt encoder for virtual staining."""

from typing import Literal

from torch import Tensor, nn

from viscy_models._components.blocks import UNeXt2Decoder
from viscy_models._components.heads import PixelToVoxelHead
from viscy_models._components.stems import UNeXt2Stem
from viscy_models._hub import create_timm_model
from viscy_models._validation import check_input_shape

__all__ = ["UNeXt2"]


class UNeXt2(nn.Module):
    """2.5D U-Net: 3D stem, timm ConvNeXt(-V2) encoder, ConvNeXt pixel-shuffle decoder, 3D head.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    in_stack_depth : int
        Input depth; must be divisible by ``stem_kernel_size[0]``.
    out_stack_depth : int, optional
        Output depth (defaults to ``in_stack_depth``).
    backbone : str
        timm encoder name (features_only).
    pretrained : bool
        Load ImageNet weights for the encoder from the Hugging Face hub.
    stem_kernel_size : tuple[int, int, int]
        Kernel and stride of the 3D stem.
    decoder_mode : {"pixelshuffle", "deconv"}
        Decoder upsampling mode.
    decoder_conv_blocks : int
        Refinement blocks per decoder stage.
    decoder_norm_layer : str
        MONAI normalisation name for the decoder.
    decoder_upsample_pre_conv : bool
        Convolve before each pixel shuffle.
    head_pool : bool
        Pad-pool smoothing in the head's upsampler.
    head_expansion_ratio : int
        Width multiplier of the head.
    drop_path_rate : float
        Stochastic depth rate of the encoder.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        in_stack_depth: int = 5,
        out_stack_depth: int | None = None,
        backbone: str = "convnextv2_tiny",
        pretrained: bool = False,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        decoder_mode: Literal["deconv", "pixelshuffle"] = "pixelshuffle",
        decoder_conv_blocks: int = 2,
        decoder_norm_layer: str = "instance",
        decoder_upsample_pre_conv: bool = False,
        head_pool: bool = False,
        head_expansion_ratio: int = 4,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if in_stack_depth % stem_kernel_size[0] != 0:
            raise ValueError(
                f"Input stack depth {in_stack_depth} is not divisible by stem kernel depth {stem_kernel_size[0]}."
            )
        self.in_channels = in_channels
        self.in_stack_depth = in_stack_depth
        self.out_stack_depth = in_stack_depth if out_stack_depth is None else out_stack_depth
        self.total_stride = (stem_kernel_size[1] * 8, stem_kernel_size[2] * 8)
        multi_scale_encoder = create_timm_model(backbone, pretrained, features_only=True, drop_path_rate=drop_path_rate)
        num_channels = multi_scale_encoder.feature_info.channels()
        multi_scale_encoder.stem_0 = nn.Identity()
        self.encoder_stages = multi_scale_encoder
        self.stem = UNeXt2Stem(in_channels, num_channels[0], stem_kernel_size, in_stack_depth)
        decoder_channels = list(reversed(num_channels))
        decoder_channels[-1] = (self.out_stack_depth + 2) * out_channels * 2**2 * head_expansion_ratio
        self.decoder = UNeXt2Decoder(
            decoder_channels,
            norm_name=decoder_norm_layer,
            mode=decoder_mode,
            conv_blocks=decoder_conv_blocks,
            strides=[2] * (len(num_channels) - 1) + [stem_kernel_size[-1]],
            upsample_pre_conv="default" if decoder_upsample_pre_conv else None,
        )
        self.head = PixelToVoxelHead(
            decoder_channels[-1], out_channels, self.out_stack_depth, head_expansion_ratio, pool=head_pool
        )

    @property
    def num_blocks(self) -> int:
        """Number of downsampling blocks (2**6 = 64 is the size divisor users pad to)."""
        return 6

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, in_channels, in_stack_depth, H, W) to (B, out_channels, out_stack_depth, H, W).

        H and W must be multiples of the total stride (32 with the default stem).
        """
        check_input_shape(
            x,
            type(self).__name__,
            ("B", "C", "D", "H", "W"),
            fixed={"C": self.in_channels, "D": self.in_stack_depth},
            multiple_of={"H": self.total_stride[0], "W": self.total_stride[1]},
        )
        x = self.stem(x)
        features = self.encoder_stages(x)
        features.reverse()
        return self.head(self.decoder(features))
