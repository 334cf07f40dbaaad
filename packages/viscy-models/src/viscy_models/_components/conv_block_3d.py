"""3D residual convolution block of the 2.5D U-Net."""

from viscy_models._components._conv_block import ConvBlockND

__all__ = ["ConvBlock3D"]


class ConvBlock3D(ConvBlockND):
    """Repeated 3D conv / activation / norm / dropout layers with a residual connection.

    The parameters are those of :class:`~viscy_models._components._conv_block.ConvBlockND`; ``kernel_size``
    is an odd int or a tuple of 3 odd ints (default 3, i.e. ``(3, 3, 3)``) and dropout is ``nn.Dropout3d``.
    """

    dims = 3
