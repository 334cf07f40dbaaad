"""BetaVae25D: a beta-VAE with a timm 2D encoder on 3D stacks and a pixel-shuffle decoder."""

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Literal

import torch
from monai.networks.blocks import ResidualUnit, UpSample
from monai.networks.blocks.dynunet_block import get_conv_layer
from torch import Tensor, nn

from viscy_models._components.heads import PixelToVoxelHead
from viscy_models._components.stems import StemDepthtoChannels
from viscy_models._hub import create_timm_model
from viscy_models._validation import check_input_shape

__all__ = ["BetaVae25D", "VaeDecoder", "VaeEncoder", "VaeUpStage"]


class VaeUpStage(nn.Module):
    """Decoder stage without skip connection: upsample then residual units.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels before and after the stage.
    scale_factor : int
        Spatial upsampling factor.
    mode : {"pixelshuffle", "deconv"}
        Upsampling mode.
    conv_blocks : int
        Residual units after the upsampling (pixelshuffle mode).
    norm_name : str
        MONAI normalisation name.
    upsample_pre_conv : {"default"} or Callable or None
        Convolution before the pixel shuffle.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale_factor: int,
        mode: Literal["pixelshuffle", "deconv"],
        conv_blocks: int,
        norm_name: str,
        upsample_pre_conv: Literal["default"] | Callable | None,
    ) -> None:
        super().__init__()
        if mode == "pixelshuffle":
            mid_channels = in_channels // scale_factor**2
            self.upsample = UpSample(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=mid_channels,
                scale_factor=scale_factor,
                mode="pixelshuffle",
                pre_conv=upsample_pre_conv,
                apply_pad_pool=False,
            )
            self.conv = nn.Sequential(
                *(
                    ResidualUnit(
                        spatial_dims=2,
                        in_channels=mid_channels if i == 0 else out_channels,
                        out_channels=out_channels,
                        norm=norm_name,
                    )
                    for i in range(conv_blocks)
                )
            )
        elif mode == "deconv":
            self.upsample = get_conv_layer(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=out_channels,
                stride=scale_factor,
                kernel_size=scale_factor,
                norm=norm_name,
                is_transposed=True,
            )
            self.conv = nn.Sequential(
                ResidualUnit(spatial_dims=2, in_channels=out_channels, out_channels=out_channels, norm=norm_name),
                nn.Conv2d(out_channels, out_channels, 1),
            )
        else:
            raise ValueError(f"VaeUpStage: mode must be 'pixelshuffle' or 'deconv', got {mode!r}")

    def forward(self, x: Tensor) -> Tensor:
        """Upsample and refine."""
        return self.conv(self.upsample(x))


class VaeEncoder(nn.Module):
    """3D-stem + timm 2D backbone encoder producing a Gaussian posterior.

    Parameters
    ----------
    backbone : str
        timm ``resnet*`` or ``convnext*`` model name.
    in_channels : int
        Input channels.
    in_stack_depth : int
        Input depth.
    latent_dim : int
        Latent dimension.
    input_spatial_size : tuple[int, int]
        (H, W) of the input; sizes the fully connected layer.
    stem_kernel_size, stem_stride : tuple[int, int, int]
        3D stem kernel and stride.
    drop_path_rate : float
        Stochastic depth rate of the backbone.
    pretrained : bool
        Load ImageNet weights for the backbone from the Hugging Face hub.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 2,
        in_stack_depth: int = 16,
        latent_dim: int = 1024,
        input_spatial_size: tuple[int, int] = (256, 256),
        stem_kernel_size: tuple[int, int, int] = (2, 4, 4),
        stem_stride: tuple[int, int, int] = (2, 4, 4),
        drop_path_rate: float = 0.0,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if not (backbone.startswith("resnet") or backbone.startswith("convnext")):
            raise ValueError(f"VaeEncoder: backbone must be a timm resnet* or convnext* model, got {backbone!r}")
        self.latent_dim = latent_dim
        self.input_spatial_size = tuple(input_spatial_size)
        encoder = create_timm_model(backbone, pretrained, features_only=True, drop_path_rate=drop_path_rate)
        num_channels = encoder.feature_info.channels()
        if backbone.startswith("convnext"):
            encoder.stem_0 = nn.Identity()
        else:
            encoder.conv1 = nn.Identity()
        self.num_channels = num_channels
        self.stem = StemDepthtoChannels(in_channels, in_stack_depth, num_channels[0], stem_kernel_size, stem_stride)
        self.encoder = encoder
        self.encoder_spatial_size = input_spatial_size[0] // stem_stride[1] // 2 ** (len(num_channels) - 1)
        spatial_w = input_spatial_size[1] // stem_stride[2] // 2 ** (len(num_channels) - 1)
        if self.encoder_spatial_size < 1 or spatial_w < 1:
            raise ValueError(
                f"VaeEncoder: input_spatial_size {tuple(input_spatial_size)} is too small for {backbone} "
                f"(needs at least {stem_stride[1] * 2 ** (len(num_channels) - 1)} px)"
            )
        self.fc = nn.Linear(num_channels[-1] * self.encoder_spatial_size * spatial_w, latent_dim)
        self.fc_mu = nn.Linear(latent_dim, latent_dim)
        self.fc_logvar = nn.Linear(latent_dim, latent_dim)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """Sample z = mu + eps * exp(logvar / 2)."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: Tensor) -> SimpleNamespace:
        """Encode (B, C, D, H, W); returns ``mean``, ``log_covariance`` and a sample ``z``."""
        features = self.encoder(self.stem(x))[-1]
        hidden = self.fc(features.flatten(1))
        mean, log_covariance = self.fc_mu(hidden), self.fc_logvar(hidden)
        return SimpleNamespace(mean=mean, log_covariance=log_covariance, z=self.reparameterize(mean, log_covariance))


class VaeDecoder(nn.Module):
    """Latent vector to a 3D stack: linear reshape, pixel-shuffle stages, 3D head.

    Parameters
    ----------
    decoder_channels : Sequence[int]
        Channels from the latent projection to the head input.
    latent_dim : int
        Latent dimension.
    out_channels : int
        Output channels.
    out_stack_depth : int
        Output depth.
    head_expansion_ratio : int
        Width multiplier of the head.
    strides : Sequence[int]
        Upsampling factor per stage.
    encoder_spatial_size : int
        Side of the square latent feature map.
    head_pool : bool
        Pad-pool smoothing in the head.
    upsample_mode : {"pixelshuffle", "deconv"}
        Upsampling mode.
    conv_blocks : int
        Residual units per stage.
    norm_name : str
        MONAI normalisation name.
    upsample_pre_conv : {"default"} or Callable or None
        Convolution before each pixel shuffle.
    """

    def __init__(
        self,
        decoder_channels: Sequence[int] = (1024, 512, 256, 128),
        latent_dim: int = 1024,
        out_channels: int = 2,
        out_stack_depth: int = 16,
        head_expansion_ratio: int = 2,
        strides: Sequence[int] = (2, 2, 2, 1),
        encoder_spatial_size: int = 16,
        head_pool: bool = False,
        upsample_mode: Literal["pixelshuffle", "deconv"] = "pixelshuffle",
        conv_blocks: int = 2,
        norm_name: str = "batch",
        upsample_pre_conv: Literal["default"] | Callable | None = None,
    ) -> None:
        super().__init__()
        self.spatial_size = encoder_spatial_size
        self.spatial_channels = latent_dim // encoder_spatial_size**2
        self.latent_reshape = nn.Linear(latent_dim, self.spatial_channels * encoder_spatial_size**2)
        self.latent_proj = nn.Conv2d(self.spatial_channels, decoder_channels[0], kernel_size=1)
        self.decoder_stages = nn.ModuleList(
            VaeUpStage(
                decoder_channels[i],
                decoder_channels[i + 1],
                scale_factor=strides[i],
                mode=upsample_mode,
                conv_blocks=conv_blocks,
                norm_name=norm_name,
                upsample_pre_conv=upsample_pre_conv,
            )
            for i in range(len(decoder_channels) - 1)
        )
        self.head = PixelToVoxelHead(
            decoder_channels[-1], out_channels, out_stack_depth, head_expansion_ratio, pool=head_pool
        )

    def forward(self, z: Tensor) -> Tensor:
        """Decode (B, latent_dim) to (B, out_channels, out_stack_depth, H, W)."""
        x = self.latent_reshape(z).reshape(z.shape[0], self.spatial_channels, self.spatial_size, self.spatial_size)
        x = self.latent_proj(x)
        for stage in self.decoder_stages:
            x = stage(x)
        return self.head(x)


class BetaVae25D(nn.Module):
    """2.5D beta-VAE: :class:`VaeEncoder` and :class:`VaeDecoder`.

    The reconstruction is ``encoder_spatial_size * 2**decoder_stages * 4`` pixels wide, which equals the input
    only for matching settings (e.g. convnext_tiny, 128 px, 3 stages).

    Parameters
    ----------
    backbone : str
        timm ``resnet*`` or ``convnext*`` model name.
    in_channels : int
        Input (and output) channels.
    in_stack_depth, out_stack_depth : int
        Input and output depth.
    latent_dim : int
        Latent dimension.
    input_spatial_size : tuple[int, int]
        (H, W) of the input.
    stem_kernel_size, stem_stride : tuple[int, int, int]
        3D stem kernel and stride.
    drop_path_rate : float
        Stochastic depth rate of the backbone.
    decoder_stages : int
        Number of x2 decoder stages.
    head_expansion_ratio : int
        Width multiplier of the head.
    head_pool : bool
        Pad-pool smoothing in the head.
    upsample_mode : {"pixelshuffle", "deconv"}
        Decoder upsampling mode.
    conv_blocks : int
        Residual units per decoder stage.
    norm_name : str
        MONAI normalisation name of the decoder.
    upsample_pre_conv : {"default"} or Callable or None
        Convolution before each pixel shuffle.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 2,
        in_stack_depth: int = 16,
        out_stack_depth: int = 16,
        latent_dim: int = 1024,
        input_spatial_size: tuple[int, int] = (256, 256),
        stem_kernel_size: tuple[int, int, int] = (2, 4, 4),
        stem_stride: tuple[int, int, int] = (2, 4, 4),
        drop_path_rate: float = 0.0,
        decoder_stages: int = 4,
        head_expansion_ratio: int = 2,
        head_pool: bool = False,
        upsample_mode: Literal["pixelshuffle", "deconv"] = "pixelshuffle",
        conv_blocks: int = 2,
        norm_name: str = "batch",
        upsample_pre_conv: Literal["default"] | Callable | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.in_stack_depth = in_stack_depth
        self.latent_dim = latent_dim
        self.input_spatial_size = tuple(input_spatial_size)
        self.encoder = VaeEncoder(
            backbone=backbone,
            in_channels=in_channels,
            in_stack_depth=in_stack_depth,
            latent_dim=latent_dim,
            input_spatial_size=input_spatial_size,
            stem_kernel_size=stem_kernel_size,
            stem_stride=stem_stride,
            drop_path_rate=drop_path_rate,
        )
        last = self.encoder.num_channels[-1]
        decoder_channels = [last // 2**i for i in range(decoder_stages)]
        decoder_channels.append((out_stack_depth + 2) * in_channels * 2**2 * head_expansion_ratio)
        self.decoder = VaeDecoder(
            decoder_channels=decoder_channels,
            latent_dim=latent_dim,
            out_channels=in_channels,
            out_stack_depth=out_stack_depth,
            head_expansion_ratio=head_expansion_ratio,
            strides=[2] * decoder_stages + [1],
            encoder_spatial_size=self.encoder.encoder_spatial_size,
            head_pool=head_pool,
            upsample_mode=upsample_mode,
            conv_blocks=conv_blocks,
            norm_name=norm_name,
            upsample_pre_conv=upsample_pre_conv,
        )

    def forward(self, x: Tensor) -> SimpleNamespace:
        """Encode and decode (B, in_channels, in_stack_depth, H, W) with (H, W) = ``input_spatial_size``.

        Returns
        -------
        SimpleNamespace
            ``recon_x``, ``mean``, ``logvar`` and ``z``.
        """
        height, width = self.input_spatial_size
        check_input_shape(
            x,
            type(self).__name__,
            ("B", "C", "D", "H", "W"),
            fixed={"C": self.in_channels, "D": self.in_stack_depth, "H": height, "W": width},
        )
        posterior = self.encoder(x)
        recon_x = self.decoder(posterior.z)
        return SimpleNamespace(recon_x=recon_x, mean=posterior.mean, logvar=posterior.log_covariance, z=posterior.z)
