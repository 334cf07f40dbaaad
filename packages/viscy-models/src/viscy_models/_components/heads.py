"""Output heads that turn 2D decoder features back into 3D stacks."""

import torch
from monai.networks.blocks import Convolution, UpSample
from torch import Tensor, nn

from viscy_models._components.blocks import icnr_init

__all__ = ["PixelToVoxelHead", "PixelToVoxelShuffleHead", "UnsqueezeHead"]


class PixelToVoxelHead(nn.Module):
    """Pixel-shuffle upsampling followed by a 3D convolution that reduces depth (D + 2) to D.

    Parameters
    ----------
    in_channels : int
        Channels of the 2D input; must be divisible by ``4 * (out_stack_depth + 2)``.
    out_channels : int
        Output channels.
    out_stack_depth : int
        Output depth.
    expansion_ratio : int
        Width multiplier of the hidden 3D convolution.
    pool : bool
        Whether the pixel-shuffle upsampler applies pad-pool smoothing.
    """

    def __init__(
        self, in_channels: int, out_channels: int, out_stack_depth: int, expansion_ratio: int, pool: bool
    ) -> None:
        super().__init__()
        if in_channels % (4 * (out_stack_depth + 2)) != 0:
            raise ValueError(
                f"PixelToVoxelHead: in_channels {in_channels} must be divisible by 4 * (out_stack_depth + 2) "
                f"= {4 * (out_stack_depth + 2)}."
            )
        self.upsample = UpSample(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=in_channels // 4,
            scale_factor=2,
            mode="pixelshuffle",
            pre_conv=None,
            apply_pad_pool=pool,
        )
        mid_channels = out_channels * expansion_ratio * 4
        self.conv = nn.Sequential(
            Convolution(
                spatial_dims=3,
                in_channels=in_channels // 4 // (out_stack_depth + 2),
                out_channels=mid_channels,
                kernel_size=3,
                padding=(0, 1, 1),
            ),
            nn.Conv3d(mid_channels, out_channels * 4, 1),
        )
        icnr_init(self.conv[-1], 2, upsample_dims=2)
        self.out = nn.PixelShuffle(2)
        self.out_stack_depth = out_stack_depth

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, C, h, w) to (B, out_channels, out_stack_depth, 4h, 4w)."""
        x = self.upsample(x)
        b, c, h, w = x.shape
        depth = self.out_stack_depth + 2
        x = self.conv(x.reshape(b, c // depth, depth, h, w))
        x = self.out(x.transpose(1, 2)).transpose(1, 2)
        return x


class UnsqueezeHead(nn.Module):
    """Insert a singleton depth axis: (B, C, H, W) to (B, C, 1, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        """Add the depth axis."""
        return x.unsqueeze(2)


class PixelToVoxelShuffleHead(nn.Module):
    """Parameter-free head: pixel-shuffle by ``xy_scaling`` then split channels into (channels, depth).

    Parameters
    ----------
    in_channels : int
        Must equal ``out_channels * out_stack_depth * xy_scaling**2``.
    out_channels : int
        Output channels.
    out_stack_depth : int
        Output depth.
    xy_scaling : int
        Spatial upsampling factor.
    pool : bool
        Whether the pixel-shuffle upsampler applies pad-pool smoothing.
    """

    def __init__(
        self, in_channels: int, out_channels: int, out_stack_depth: int = 5, xy_scaling: int = 4, pool: bool = False
    ) -> None:
        super().__init__()
        expected = out_channels * out_stack_depth * xy_scaling**2
        if in_channels != expected:
            raise ValueError(
                f"PixelToVoxelShuffleHead: in_channels must be out_channels * out_stack_depth * xy_scaling**2 "
                f"= {expected}, got {in_channels}."
            )
        self.out_channels = out_channels
        self.out_stack_depth = out_stack_depth
        self.upsample = UpSample(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=out_stack_depth * out_channels,
            scale_factor=xy_scaling,
            mode="pixelshuffle",
            pre_conv=None,
            apply_pad_pool=pool,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, C, h, w) to (B, out_channels, out_stack_depth, h * s, w * s)."""
        x = self.upsample(x)
        b, _, h, w = x.shape
        return torch.reshape(x, (b, self.out_channels, self.out_stack_depth, h, w))
