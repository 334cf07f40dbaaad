"""Unet25d: 2.5D U-Net that compresses a 3D input stack to a thinner output stack."""

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from viscy_models._components.conv_block_3d import ConvBlock3D
from viscy_models.unet._filters import unet_filters
from viscy_models.unet._unet_pass import check_unet_input, unet_pass

__all__ = ["Unet25d"]


class Unet25d(nn.Module):
    """2.5D U-Net: 3D conv blocks whose depth is compressed at the bottleneck and on the skip connections.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    in_stack_depth : int
        Input depth.
    out_stack_depth : int
        Output depth (at most ``in_stack_depth``).
    xy_kernel_size : tuple[int, int]
        Odd in-plane kernel.
    residual : bool
        Residual connections inside the conv blocks.
    dropout : float
        Dropout3d probability, in [0, 0.5].
    num_blocks : int
        Number of down/up levels; H and W must be multiples of 2**num_blocks.
    num_block_layers : int
        Convolutions per block.
    num_filters : Sequence[int]
        Channels per level (num_blocks + 1 entries); default 16 * 2**i.
    task : {"seg", "reg"}
        "reg" makes the terminal block linear without norm and dropout.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        in_stack_depth: int = 5,
        out_stack_depth: int = 1,
        xy_kernel_size: tuple[int, int] = (3, 3),
        residual: bool = False,
        dropout: float = 0.2,
        num_blocks: int = 4,
        num_block_layers: int = 2,
        num_filters: Sequence[int] = (),
        task: Literal["seg", "reg"] = "seg",
    ) -> None:
        super().__init__()
        if not 0 <= dropout <= 0.5:
            raise ValueError(f"Unet25d: dropout must be in [0, 0.5], got {dropout}")
        if not 1 <= out_stack_depth <= in_stack_depth:
            raise ValueError(f"Unet25d: out_stack_depth must be in [1, {in_stack_depth}], got {out_stack_depth}")
        self.in_channels = in_channels
        self.in_stack_depth = in_stack_depth
        self.out_stack_depth = out_stack_depth
        self.num_blocks = num_blocks
        filters = unet_filters(num_blocks, num_filters, "Unet25d")
        self.num_filters = filters
        ky, kx = xy_kernel_size
        depth_kernel = (1 + in_stack_depth - out_stack_depth, 1, 1)
        block_kwargs = {"residual": residual, "dropout": dropout, "num_repeats": num_block_layers}
        for i in range(num_blocks):
            block_in = in_channels if i == 0 else filters[i - 1]
            self.add_module(
                f"down_conv_block_{i}", ConvBlock3D(block_in, filters[i], kernel_size=(3, ky, kx), **block_kwargs)
            )
            self.add_module(f"down_samp_{i}", nn.AvgPool3d((1, 2, 2)))
        self.bottom_transition_block = nn.Conv3d(filters[-2], filters[-1], kernel_size=depth_kernel)
        for i in range(num_blocks):
            self.add_module(f"skip_conv_layer_{i}", nn.Conv3d(filters[i], filters[i], kernel_size=depth_kernel))
        self.up_samplers = [nn.Upsample(scale_factor=(1, 2, 2), mode="trilinear") for _ in range(num_blocks)]
        for i in range(num_blocks):
            self.add_module(
                f"up_conv_block_{i}",
                ConvBlock3D(
                    filters[-(i + 1)] + filters[-(i + 2)],
                    filters[-(i + 2)],
                    kernel_size=(1, ky, kx),
                    **block_kwargs,
                ),
            )
        regression = task == "reg"
        self.terminal_block = ConvBlock3D(
            filters[0],
            out_channels,
            kernel_size=(1, 3, 3),
            num_repeats=1,
            residual=False,
            norm="none" if regression else "batch",
            activation="linear" if regression else "relu",
            dropout=False if regression else dropout,
        )

    def __name__(self) -> str:
        """Model name (kept for compatibility)."""
        return "Unet25d"

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, in_channels, in_stack_depth, H, W) to (B, out_channels, out_stack_depth, H, W)."""
        check_unet_input(self, x, depth=self.in_stack_depth)
        return self.terminal_block(
            unet_pass(self, x, skip=lambda i, features: getattr(self, f"skip_conv_layer_{i}")(features))
        )
