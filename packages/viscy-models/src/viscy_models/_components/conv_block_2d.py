"""2D residual convolution block of the classic 2D U-Net."""

from torch import Tensor

from viscy_models._components._conv_block import ConvBlockND
from viscy_models._validation import check_input_shape

__all__ = ["ConvBlock2D"]


class ConvBlock2D(ConvBlockND):
    """Repeated 2D conv / activation / norm layers with a residual connection.

    The parameters are those of :class:`~viscy_models._components._conv_block.ConvBlockND`; ``kernel_size``
    is an odd int or a tuple of 2 odd ints and dropout is ``nn.Dropout2d``. Unlike the original, fractional
    dropout values are honoured (the original truncated them to 0), and ``padding`` (new, default "same") is
    accepted as in :class:`~viscy_models._components.conv_block_3d.ConvBlock3D`.
    """

    dims = 2

    def forward(self, x: Tensor, validate_input: bool = False) -> Tensor:
        """Map (B, in_filters, H, W) to (B, out_filters, H, W)."""
        if validate_input:
            check_input_shape(x, "ConvBlock2D", ("B", "C", "H", "W"), fixed={"C": self.in_filters})
        return super().forward(x)
