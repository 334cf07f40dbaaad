"""Decoder building blocks shared by UNeXt2 and the FCMAE."""

from collections.abc import Callable
from typing import Literal

import torch
from monai.networks.blocks import ResidualUnit, UpSample
from monai.networks.blocks.dynunet_block import get_conv_layer
from timm.layers import LayerNorm, LayerNorm2d
from timm.models.convnext import ConvNeXtStage, _init_weights
from torch import Tensor, nn

__all__ = ["UNeXt2Decoder", "UNeXt2UpStage", "icnr_init"]


def icnr_init(
    conv: nn.Module,
    upsample_factor: int,
    upsample_dims: int,
    init: Callable[[Tensor], Tensor] = nn.init.kaiming_normal_,
) -> None:
    """ICNR-initialise ``conv`` in place for a sub-pixel upsampling that follows it (Aitken et al., 2017).

    A kernel with ``out / factor**upsample_dims`` output channels is drawn with ``init`` and replicated so that
    every sub-pixel position starts identical, which avoids checkerboard artefacts.

    Parameters
    ----------
    conv : nn.Module
        A convolution (or linear-like) module with a ``weight`` of shape (out, in, *kernel).
    upsample_factor : int
        Upsampling factor of the following pixel shuffle.
    upsample_dims : int
        Number of upsampled dimensions (may differ from the kernel's dimensions).
    init : Callable[[Tensor], Tensor]
        In-place initialiser for the base kernel.
    """
    out_channels, in_channels, *dims = conv.weight.shape
    scale = upsample_factor**upsample_dims
    base_out = out_channels // scale
    kernel = init(torch.zeros([base_out, in_channels, *dims]))
    kernel = kernel.transpose(0, 1).reshape(base_out, in_channels, -1).repeat(1, 1, scale)
    kernel = kernel.reshape([in_channels, out_channels, *dims]).transpose(0, 1)
    with torch.no_grad():
        conv.weight.copy_(kernel)


def _get_convnext_stage(
    in_channels: int, out_channels: int, depth: int, upsample_factor: int | None = None
) -> ConvNeXtStage:
    """ConvNeXt-V2 stage (GRN, conv MLP, no layer scale) with stride 1; ICNR on the last block if upsampling."""
    stage = ConvNeXtStage(
        in_chs=in_channels,
        out_chs=out_channels,
        stride=1,
        depth=depth,
        ls_init_value=None,
        conv_mlp=True,
        use_grn=True,
        norm_layer=LayerNorm2d,
        norm_layer_cl=LayerNorm,
    )
    stage.apply(_init_weights)
    if upsample_factor:
        icnr_init(stage.blocks[-1].mlp.fc2, upsample_factor, upsample_dims=2)
    return stage


class UNeXt2UpStage(nn.Module):
    """2D decoder stage: upsample, concatenate the skip connection, refine.

    Parameters
    ----------
    in_channels : int
        Channels of the low-resolution input.
    skip_channels : int
        Channels of the skip connection.
    out_channels : int
        Output channels.
    scale_factor : int
        Spatial upsampling factor.
    mode : {"deconv", "pixelshuffle"}
        Upsampling mode.
    conv_blocks : int
        Number of refinement blocks.
    norm_name : str
        MONAI normalisation name (deconv mode only).
    upsample_pre_conv : {"default"} or Callable or None
        Convolution before the pixel shuffle (pixelshuffle mode).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        scale_factor: int,
        mode: Literal["deconv", "pixelshuffle"],
        conv_blocks: int,
        norm_name: str,
        upsample_pre_conv: Literal["default"] | Callable | None,
    ) -> None:
        super().__init__()
        if mode == "pixelshuffle":
            mid_channels = in_channels // scale_factor**2
            self.upsample = UpSample(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=mid_channels,
                scale_factor=scale_factor,
                mode="pixelshuffle",
                pre_conv=upsample_pre_conv,
                apply_pad_pool=False,
            )
            self.conv = _get_convnext_stage(
                mid_channels + skip_channels,
                out_channels,
                conv_blocks,
                upsample_factor=None if upsample_pre_conv else scale_factor,
            )
        elif mode == "deconv":
            self.upsample = get_conv_layer(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=out_channels,
                stride=scale_factor,
                kernel_size=scale_factor,
                norm=norm_name,
                is_transposed=True,
            )
            self.conv = nn.Sequential(
                ResidualUnit(
                    spatial_dims=2, in_channels=out_channels + skip_channels, out_channels=out_channels, norm=norm_name
                ),
                nn.Conv2d(out_channels, out_channels, 1),
            )
        else:
            raise ValueError(f"UNeXt2UpStage: mode must be 'deconv' or 'pixelshuffle', got {mode!r}.")

    def forward(self, inp: Tensor, skip: Tensor | None) -> Tensor:
        """Upsample ``inp``, concatenate ``skip`` (if any) on channels, refine."""
        x = self.upsample(inp)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class UNeXt2Decoder(nn.Module):
    """Stack of :class:`UNeXt2UpStage` from the lowest to the highest resolution.

    Parameters
    ----------
    num_channels : list[int]
        Channels from the deepest feature map to the output of the last stage.
    norm_name : str
        MONAI normalisation name.
    mode : {"deconv", "pixelshuffle"}
        Upsampling mode.
    conv_blocks : int
        Refinement blocks per stage.
    strides : list[int]
        Upsampling factor per stage (extra entries are ignored).
    upsample_pre_conv : {"default"} or Callable or None
        Convolution before each pixel shuffle.
    """

    def __init__(
        self,
        num_channels: list[int],
        norm_name: str,
        mode: Literal["deconv", "pixelshuffle"],
        conv_blocks: int,
        strides: list[int],
        upsample_pre_conv: Literal["default"] | Callable | None,
    ) -> None:
        super().__init__()
        self.decoder_stages = nn.ModuleList(
            UNeXt2UpStage(
                in_channels=num_channels[i],
                skip_channels=num_channels[i] // 2,
                out_channels=num_channels[i + 1],
                scale_factor=strides[i],
                mode=mode,
                conv_blocks=conv_blocks,
                norm_name=norm_name,
                upsample_pre_conv=upsample_pre_conv,
            )
            for i in range(len(num_channels) - 1)
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        """Decode feature maps ordered low to high resolution; the caller's list is not modified."""
        skips = list(features[1:]) + [None] * (len(self.decoder_stages) - len(features) + 1)
        x = features[0]
        for stage, skip in zip(self.decoder_stages, skips, strict=False):
            x = stage(x, skip)
        return x
