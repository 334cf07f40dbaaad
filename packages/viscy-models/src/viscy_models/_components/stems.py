"""Stems that turn a 3D stack into a 2D feature map by folding depth into channels."""

from torch import Tensor, nn

__all__ = ["StemDepthtoChannels", "UNeXt2Stem"]


def _fold_depth_into_channels(x: Tensor) -> Tensor:
    b, c, d, h, w = x.shape
    return x.reshape(b, c * d, h, w)


class UNeXt2Stem(nn.Module):
    """3D convolution whose output depth is folded into channels.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Channels after folding depth into channels.
    kernel_size : tuple[int, int, int]
        Kernel (and stride) of the 3D convolution, (depth, y, x).
    in_stack_depth : int
        Depth of the input stack.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int], in_stack_depth: int
    ) -> None:
        super().__init__()
        ratio = in_stack_depth // kernel_size[0]
        self.conv = nn.Conv3d(in_channels, out_channels // ratio, kernel_size=kernel_size, stride=kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, C, D, H, W) to (B, C' * D', H', W')."""
        return _fold_depth_into_channels(self.conv(x))


class StemDepthtoChannels(nn.Module):
    """3D convolution stem whose output depth folds into exactly ``in_channels_encoder`` channels.

    Parameters
    ----------
    in_channels : int
        Input channels.
    in_stack_depth : int
        Depth of the input stack.
    in_channels_encoder : int
        Channels the 2D encoder expects after the stem.
    stem_kernel_size : tuple[int, int, int]
        Kernel of the 3D convolution, (depth, y, x).
    stem_stride : tuple[int, int, int]
        Stride of the 3D convolution, (depth, y, x).
    """

    def __init__(
        self,
        in_channels: int,
        in_stack_depth: int,
        in_channels_encoder: int,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        stem_stride: tuple[int, int, int] = (5, 4, 4),
    ) -> None:
        super().__init__()
        stem_channels = self.compute_stem_channels(
            in_stack_depth, stem_kernel_size, stem_stride[0], in_channels_encoder
        )
        self.conv = nn.Conv3d(in_channels, stem_channels, kernel_size=stem_kernel_size, stride=stem_stride)

    @staticmethod
    def compute_stem_channels(
        in_stack_depth: int,
        stem_kernel_size: tuple[int, int, int],
        stem_stride_depth: int,
        in_channels_encoder: int,
    ) -> int:
        """Return the 3D conv output channels so that channels x output depth equals the encoder's channels.

        Raises
        ------
        ValueError
            If no integer channel count gives exactly ``in_channels_encoder``.
        """
        out_depth = (in_stack_depth - stem_kernel_size[0]) // stem_stride_depth + 1
        if out_depth < 1:
            raise ValueError(
                f"in_stack_depth {in_stack_depth} is smaller than the stem kernel depth {stem_kernel_size[0]}."
            )
        stem_channels = in_channels_encoder // out_depth
        mismatch = in_channels_encoder - out_depth * stem_channels
        if mismatch != 0:
            raise ValueError(
                f"Stem needs to output {mismatch} more channels to match the encoder. Adjust the in_stack_depth."
            )
        return stem_channels

    def forward(self, x: Tensor) -> Tensor:
        """Map (B, C, D, H, W) to (B, in_channels_encoder, H', W')."""
        return _fold_depth_into_channels(self.conv(x))
