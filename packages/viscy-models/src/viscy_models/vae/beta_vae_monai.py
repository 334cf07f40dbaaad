"""BetaVaeMonai: a thin wrapper around MONAI's VarAutoEncoder with a named output."""

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Literal

from monai.networks.layers import Norm
from monai.networks.nets import VarAutoEncoder
from torch import Tensor, nn

from viscy_models._validation import check_input_shape

__all__ = ["BetaVaeMonai"]

_NORMS = {"batch": Norm.BATCH, "instance": Norm.INSTANCE}


class BetaVaeMonai(nn.Module):
    """Beta-VAE built from MONAI's ``VarAutoEncoder`` (2D or 3D).

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_shape : Sequence[int]
        Input shape without batch, channels first, e.g. (1, 64, 64).
    out_channels : int
        Output channels.
    latent_size : int
        Latent dimension.
    channels : Sequence[int]
        Channels per encoder level.
    strides : Sequence[int]
        Stride per encoder level.
    kernel_size, up_kernel_size : int
        Encoder and decoder kernel sizes.
    num_res_units : int
        Residual units per level.
    use_sigmoid : bool
        Sigmoid on the reconstruction.
    norm : {"batch", "instance"}
        Normalisation.
    **kwargs
        Forwarded to ``VarAutoEncoder``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_shape: Sequence[int],
        out_channels: int,
        latent_size: int,
        channels: Sequence[int],
        strides: Sequence[int],
        kernel_size: int = 3,
        up_kernel_size: int = 3,
        num_res_units: int = 0,
        use_sigmoid: bool = False,
        norm: Literal["batch", "instance"] = "instance",
        **kwargs,
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        if len(in_shape) != spatial_dims + 1:
            raise ValueError(f"BetaVaeMonai: in_shape must be (C, *{spatial_dims} spatial sizes), got {in_shape}")
        self.spatial_dims = spatial_dims
        self.in_shape = tuple(in_shape)
        self.out_channels = out_channels
        self.latent_size = latent_size
        self.channels = channels
        self.strides = strides
        self.kernel_size = kernel_size
        self.up_kernel_size = up_kernel_size
        self.num_res_units = num_res_units
        self.use_sigmoid = use_sigmoid
        self.norm = norm
        self.model = VarAutoEncoder(
            spatial_dims=spatial_dims,
            in_shape=in_shape,
            out_channels=out_channels,
            latent_size=latent_size,
            channels=channels,
            strides=strides,
            kernel_size=kernel_size,
            up_kernel_size=up_kernel_size,
            num_res_units=num_res_units,
            use_sigmoid=use_sigmoid,
            norm=_NORMS[norm],
            **kwargs,
        )

    def forward(self, x: Tensor) -> SimpleNamespace:
        """Encode and decode (B, *in_shape); returns ``recon_x``, ``mean``, ``logvar`` and ``z``."""
        axes = ("B", "C", *[f"S{i}" for i in range(self.spatial_dims)])
        check_input_shape(x, type(self).__name__, axes, fixed=dict(zip(axes[1:], self.in_shape, strict=True)))
        recon_x, mean, logvar, z = self.model(x)
        return SimpleNamespace(recon_x=recon_x, mean=mean, logvar=logvar, z=z)
