"""Shared implementation of the N-d residual convolution blocks used by the classic U-Nets."""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_NORMS = {
    2: {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d},
    3: {"batch": nn.BatchNorm3d, "instance": nn.InstanceNorm3d},
}
_ACTIVATIONS = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU}
_CONVS = {2: (nn.Conv2d, nn.ConvTranspose2d), 3: (nn.Conv3d, nn.ConvTranspose3d)}
_DROPOUTS = {2: nn.Dropout2d, 3: nn.Dropout3d}


def _kernel_tuple(kernel_size: int | Sequence[int], dims: int, block_name: str) -> tuple[int, ...]:
    kernel = (kernel_size,) * dims if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(kernel) != dims or not all(isinstance(k, int) and k % 2 == 1 for k in kernel):
        raise ValueError(
            f"{block_name}: kernel_size must be an odd int or a tuple of {dims} odd ints, got {kernel_size}"
        )
    return kernel


def filter_schedule(
    in_filters: int, out_filters: int, num_repeats: int, filter_steps: str, block_name: str
) -> list[tuple[int, int]]:
    """(in, out) channels of each repeated convolution for the ``filter_steps`` policy."""
    if filter_steps == "first":
        return [(in_filters, out_filters)] + [(out_filters, out_filters)] * (num_repeats - 1)
    if filter_steps == "last":
        return [(in_filters, in_filters)] * (num_repeats - 1) + [(in_filters, out_filters)]
    if filter_steps == "linear":
        steps = np.linspace(in_filters, out_filters, num_repeats + 1).astype(int).tolist()
        return list(zip(steps[:-1], steps[1:], strict=True))
    raise ValueError(f"{block_name}: filter_steps must be 'first', 'last' or 'linear', got {filter_steps!r}")


class ConvBlockND(nn.Module):
    """Repeated conv / activation / norm / dropout layers with an optional residual connection.

    Subclasses set ``dims`` (2 or 3). Submodules are registered as ``Conv{d}d_{i}``, ``{norm}_norm_{i}``,
    ``{activation}_act_{i}``, ``dropout_{i}`` and ``resid_conv``, the names checkpoints of the original VisCy use.

    Parameters
    ----------
    in_filters, out_filters : int
        Input and output channels.
    dropout : float or bool
        Dropout2d/Dropout3d probability after each convolution (False/0 disables it).
    norm : str
        "batch", "instance", or anything else for no normalisation.
    residual : bool
        Add the (channel-padded or 1x1-projected) input to the output.
    activation : str
        "relu", "leakyrelu", "elu", "selu" or "linear" (no activation).
    transpose : bool
        Use transposed convolutions (only with ``filter_steps="linear"``).
    kernel_size : int or tuple of int
        Odd kernel size, an int for every spatial dim or one per dim (``dims`` entries).
    num_repeats : int
        Number of convolutions.
    filter_steps : {"first", "last", "linear"}
        Where the channel change happens.
    layer_order : str
        Permutation of "can" (conv, activation, norm).
    padding : str or tuple of int, optional
        None/"same" keeps the size (k // 2 per side), "valid" pads nothing, a tuple is passed to ``F.pad``.
    """

    dims: Literal[2, 3]

    def __init__(
        self,
        in_filters: int,
        out_filters: int,
        dropout: float | bool = False,
        norm: str = "batch",
        residual: bool = True,
        activation: str = "relu",
        transpose: bool = False,
        kernel_size: int | Sequence[int] = 3,
        num_repeats: int = 3,
        filter_steps: Literal["first", "last", "linear"] = "first",
        layer_order: str = "can",
        padding: str | tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        dims = self.dims
        block_name = f"ConvBlock{dims}D"
        self.in_filters = in_filters
        self.out_filters = out_filters
        self.residual = residual
        self.layer_order = layer_order
        if set(layer_order) != {"c", "a", "n"} or len(layer_order) != 3:
            raise ValueError(f"{block_name}: layer_order must be a permutation of 'can', got {layer_order!r}")
        if activation != "linear" and activation not in _ACTIVATIONS:
            raise NotImplementedError(f"{block_name}: activation {activation!r} not in {['linear', *_ACTIVATIONS]}")
        if transpose and filter_steps != "linear":
            raise NotImplementedError(f"{block_name}: transpose convolutions need filter_steps='linear'")
        kernel = _kernel_tuple(kernel_size, dims, block_name)
        if padding is None or padding == "same":
            self.padding = tuple(p for k in reversed(kernel) for p in (k // 2, k // 2))
        elif padding == "valid":
            self.padding = (0,) * (2 * dims)
        else:
            self.padding = tuple(padding)
        conv_cls = _CONVS[dims][1 if transpose else 0]
        self.conv_list, self.norm_list, self.act_list, self.drop_list = [], [], [], []
        for i, (cin, cout) in enumerate(
            filter_schedule(in_filters, out_filters, num_repeats, filter_steps, block_name)
        ):
            conv = conv_cls(cin, cout, kernel_size=kernel)
            self.add_module(f"Conv{dims}d_{i}", conv)
            self.conv_list.append(conv)
            norm_module = _NORMS[dims][norm](cout) if norm in _NORMS[dims] else None
            if norm_module is not None:
                self.add_module(f"{norm}_norm_{i}", norm_module)
            self.norm_list.append(norm_module)
            act_module = _ACTIVATIONS[activation]() if activation in _ACTIVATIONS else None
            if act_module is not None:
                self.add_module(f"{activation}_act_{i}", act_module)
            self.act_list.append(act_module)
            drop_module = _DROPOUTS[dims](float(dropout)) if dropout else None
            if drop_module is not None:
                self.add_module(f"dropout_{i}", drop_module)
            self.drop_list.append(drop_module)
        self.resid_conv = _CONVS[dims][0](in_filters, out_filters, kernel_size=1)

    def _conv(self, i: int, x: Tensor) -> Tensor:
        x = self.conv_list[i](F.pad(x, self.padding))
        return x if self.drop_list[i] is None else self.drop_list[i](x)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the repeats in ``layer_order`` then add the residual connection."""
        x0 = x
        for i in range(len(self.conv_list)):
            for letter in self.layer_order:
                if letter == "c":
                    x = self._conv(i, x)
                elif letter == "a" and self.act_list[i] is not None:
                    x = self.act_list[i](x)
                elif letter == "n" and self.norm_list[i] is not None:
                    x = self.norm_list[i](x)
        if not self.residual:
            return x
        if self.in_filters > self.out_filters:
            return x + self.resid_conv(x0)
        if self.in_filters < self.out_filters:
            pad = torch.zeros(
                (x0.shape[0], self.out_filters - self.in_filters, *x0.shape[2:]), dtype=x0.dtype, device=x0.device
            )
            x0 = torch.cat([x0, pad], dim=1)
        return x + x0
