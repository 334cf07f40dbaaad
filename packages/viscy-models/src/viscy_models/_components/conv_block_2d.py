"""2D residual convolution block of the classic 2D U-Net."""

from typing import Literal

from torch import Tensor

from viscy_models._components._conv_block import ConvBlockND
from viscy_models._validation import check_input_shape

__all__ = ["ConvBlock2D"]


class ConvBlock2D(ConvBlockND):
    """Repeated 2D conv / activation / norm layers with a residual connection.

    Parameters
    ----------
    in_filters, out_filters : int
        Input and output channels.
    dropout : float or bool
        Dropout2d probability after each convolution (False/0 disables it). Unlike the original, fractional
        values are honoured (the original truncated them to 0).
    norm : str
        "batch", "instance", or anything else for no normalisation.
    residual : bool
        Add the (channel-padded or 1x1-projected) input to the output.
    activation : str
        "relu", "leakyrelu", "elu", "selu" or "linear" (no activation).
    transpose : bool
        Use transposed convolutions (only with ``filter_steps="linear"``).
    kernel_size : int or tuple[int, int]
        Odd kernel size.
    num_repeats : int
        Number of convolutions.
    filter_steps : {"first", "last", "linear"}
        Where the channel change happens.
    layer_order : str
        Permutation of "can" (conv, activation, norm).
    """

    def __init__(
        self,
        in_filters: int,
        out_filters: int,
        dropout: float | bool = False,
        norm: str = "batch",
        residual: bool = True,
        activation: str = "relu",
        transpose: bool = False,
        kernel_size: int | tuple[int, int] = 3,
        num_repeats: int = 3,
        filter_steps: Literal["first", "last", "linear"] = "first",
        layer_order: str = "can",
    ) -> None:
        super().__init__(
            2,
            in_filters,
            out_filters,
            dropout,
            norm,
            residual,
            activation,
            transpose,
            kernel_size,
            num_repeats,
            filter_steps,
            layer_order,
            padding=None,
        )

    def forward(self, x: Tensor, validate_input: bool = False) -> Tensor:
        """Map (B, in_filters, H, W) to (B, out_filters, H, W)."""
        if validate_input:
            check_input_shape(x, "ConvBlock2D", ("B", "C", "H", "W"), fixed={"C": self.in_filters})
        return super().forward(x)
