"""Input check and down/up pass shared by the classic 2D and 2.5D U-Nets (:mod:`.unet2d`, :mod:`.unet25d`)."""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from viscy_models._validation import check_input_shape


def check_unet_input(model: nn.Module, x: Tensor, depth: int) -> None:
    """Check a (B, in_channels, depth, H, W) input whose H and W are multiples of 2**num_blocks."""
    size = 2**model.num_blocks
    check_input_shape(
        x,
        type(model).__name__,
        ("B", "C", "D", "H", "W"),
        fixed={"C": model.in_channels, "D": depth},
        multiple_of={"H": size, "W": size},
    )


def unet_pass(model: nn.Module, x: Tensor, skip: Callable[[int, Tensor], Tensor] | None = None) -> Tensor:
    """Run the down blocks, the bottom block and the up blocks (with skip concatenation) of ``model``.

    ``skip(level, features)`` maps the features of a down block to the skip connection (identity if None).
    """
    skips = []
    for i in range(model.num_blocks):
        x = getattr(model, f"down_conv_block_{i}")(x)
        skips.append(x if skip is None else skip(i, x))
        x = getattr(model, f"down_samp_{i}")(x)
    x = model.bottom_transition_block(x)
    for i in range(model.num_blocks):
        x = torch.cat([model.up_samplers[i](x), skips[-(i + 1)]], dim=1)
        x = getattr(model, f"up_conv_block_{i}")(x)
    return x
