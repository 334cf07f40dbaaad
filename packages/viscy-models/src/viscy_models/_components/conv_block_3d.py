"""3D residual convolution block of the 2.5D U-Net."""

from typing import Literal

from viscy_models._components._conv_block import ConvBlockND

__all__ = ["ConvBlock3D"]


class ConvBlock3D(ConvBlockND):
    """Repeated 3D conv / activation / norm / dropout layers with a residual connection.

    Parameters
    ----------
    in_filters, out_filters : int
        Input and output channels.
    dropout : float or bool
        Dropout3d probability after each convolution (False/0 disables it).
    norm : str
        "batch", "instance", or anything else for no normalisation.
    residual : bool
        Add the (channel-padded or 1x1-projected) input to the output.
    activation : str
        "relu", "leakyrelu", "elu", "selu" or "linear" (no activation).
    transpose : bool
        Use transposed convolutions (only with ``filter_steps="linear"``).
    kernel_size : int or tuple[int, int, int]
        Odd kernel size.
    num_repeats : int
        Number of convolutions.
    filter_steps : {"first", "last", "linear"}
        Where the channel change happens.
    layer_order : str
        Permutation of "can" (conv, activation, norm).
    padding : str or tuple of int, optional
        None/"same" keeps the size (k // 2 per side), "valid" pads nothing, a tuple is passed to ``F.pad``.
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
        kernel_size: int | tuple[int, int, int] = (3, 3, 3),
        num_repeats: int = 3,
        filter_steps: Literal["first", "last", "linear"] = "first",
        layer_order: str = "can",
        padding: str | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            3,
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
            padding=padding,
        )
