"""Unet2d: the classic 2D U-Net of VisCy (residual conv blocks, average-pool down, bilinear up)."""

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from viscy_models._components.conv_block_2d import ConvBlock2D
from viscy_models.unet._filters import unet_filters
from viscy_models.unet._unet_pass import check_unet_input, unet_pass

__all__ = ["Unet2d"]


class Unet2d(nn.Module):
    """2D U-Net on (B, C, 1, H, W) inputs.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    kernel_size : tuple[int, int]
        Odd convolution kernel.
    residual : bool
        Residual connections inside the conv blocks.
    dropout : float
        Dropout2d probability in the conv blocks.
    num_blocks : int
        Number of down/up levels; H and W must be multiples of 2**num_blocks.
    num_block_layers : int
        Convolutions per block.
    num_filters : Sequence[int]
        Channels per level (num_blocks + 1 entries); default 16 * 2**i.
    task : {"seg", "reg"}
        "reg" makes the terminal block linear.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        kernel_size: tuple[int, int] = (3, 3),
        residual: bool = False,
        dropout: float = 0.2,
        num_blocks: int = 4,
        num_block_layers: int = 2,
        num_filters: Sequence[int] = (),
        task: Literal["seg", "reg"] = "seg",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_blocks = num_blocks
        filters = unet_filters(num_blocks, num_filters, "Unet2d")
        self.num_filters = filters
        block_kwargs = {"kernel_size": kernel_size, "residual": residual, "dropout": dropout}
        for i in range(num_blocks):
            block_in = in_channels if i == 0 else filters[i - 1]
            self.add_module(
                f"down_conv_block_{i}", ConvBlock2D(block_in, filters[i], num_repeats=num_block_layers, **block_kwargs)
            )
            self.add_module(f"down_samp_{i}", nn.AvgPool2d(2))
        self.bottom_transition_block = ConvBlock2D(
            filters[-2], filters[-1], num_repeats=num_block_layers, **block_kwargs
        )
        self.up_samplers = [
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) for _ in range(num_blocks)
        ]
        for i in range(num_blocks):
            self.add_module(
                f"up_conv_block_{i}",
                ConvBlock2D(
                    filters[-(i + 1)] + filters[-(i + 2)],
                    filters[-(i + 2)],
                    num_repeats=num_block_layers,
                    **block_kwargs,
                ),
            )
        self.terminal_block = ConvBlock2D(
            filters[0],
            out_channels,
            residual=False,
            activation="linear" if task == "reg" else "relu",
            num_repeats=1,
            norm="none",
            kernel_size=kernel_size,
        )

    def __name__(self) -> str:
        """Model name (kept for compatibility)."""
        return "Unet2d"

    def forward(self, x: Tensor, validate_input: bool = False) -> Tensor:
        """Map (B, in_channels, 1, H, W) to (B, out_channels, 1, H, W).

        The input shape is always validated; ``validate_input`` is kept for compatibility.
        """
        check_unet_input(self, x, depth=1)
        return self.terminal_block(unet_pass(self, x.squeeze(2))).unsqueeze(2)
