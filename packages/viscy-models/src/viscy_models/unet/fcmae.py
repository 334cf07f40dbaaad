"""Fully convolutional masked autoencoder (FCMAE) with a ConvNeXt-V2 encoder that emulates sparse convolutions.

Masked pixels are zeroed before and after every depthwise convolution, and the per-token layers (LayerNorm,
GRN MLP) only see the visible tokens, as in ConvNeXt-V2's sparse pre-training.
"""

import math
from collections.abc import Sequence

import torch
from timm.layers import DropPath, GlobalResponseNormMlp, LayerNorm2d, create_conv2d, trunc_normal_
from timm.models.convnext import Downsample
from torch import BoolTensor, Size, Tensor, nn

from viscy_models._components.blocks import UNeXt2Decoder
from viscy_models._components.heads import PixelToVoxelHead, PixelToVoxelShuffleHead
from viscy_models._validation import check_input_shape

__all__ = [
    "FullyConvolutionalMAE",
    "MaskedAdaptiveProjection",
    "MaskedConvNeXtV2Block",
    "MaskedConvNeXtV2Stage",
    "MaskedMultiscaleEncoder",
    "generate_mask",
    "masked_patchify",
    "masked_unpatchify",
    "upsample_mask",
]


def generate_mask(target: Size, stride: int, mask_ratio: float, device: str | torch.device) -> BoolTensor:
    """Random patch mask with exactly ``int(patches * mask_ratio)`` masked (True) patches per sample.

    Parameters
    ----------
    target : Size
        Shape of the input, (B, ..., H, W).
    stride : int
        Patch size in pixels.
    mask_ratio : float
        Fraction of patches to mask.
    device : str or torch.device
        Device of the mask.

    Returns
    -------
    BoolTensor
        (B, 1, H // stride, W // stride), True where masked.
    """
    batch, (height, width) = target[0], target[-2:]
    grid = (height // stride, width // stride)
    num_patches = grid[0] * grid[1]
    num_masked = int(num_patches * mask_ratio)
    ranks = torch.rand(batch, num_patches, device=device).argsort(dim=1).argsort(dim=1)
    return (ranks < num_masked).reshape(batch, 1, *grid)


def upsample_mask(mask: BoolTensor, target: Size) -> BoolTensor:
    """Nearest-upsample a (B, 1, h, w) mask to the last two dimensions of ``target``.

    Raises
    ------
    ValueError
        If the target size is not a multiple of the mask size.
    """
    (height, width), (h, w) = target[-2:], mask.shape[-2:]
    if height % h or width % w:
        raise ValueError(f"upsample_mask: target size {(height, width)} is not a multiple of the mask size {(h, w)}")
    return mask.repeat_interleave(height // h, dim=-2).repeat_interleave(width // w, dim=-1)


def masked_patchify(features: Tensor, unmasked: BoolTensor | None = None) -> Tensor:
    """(B, C, H, W) features to channel-last tokens (B, L, C), keeping only visible pixels if a mask is given."""
    b, c = features.shape[:2]
    tokens = features.permute(0, 2, 3, 1)
    if unmasked is None:
        return tokens.reshape(b, -1, c)
    return tokens[unmasked[:, 0]].reshape(b, -1, c)


def masked_unpatchify(features: Tensor, out_shape: Size, unmasked: BoolTensor | None = None) -> Tensor:
    """Channel-last tokens (B, L, C) back to (B, C, H, W); masked pixels are zero."""
    b, c, h, w = out_shape
    if unmasked is None:
        return features.reshape(b, h, w, c).permute(0, 3, 1, 2)
    out = features.new_zeros((b, h, w, c))
    out[unmasked[:, 0]] = features.reshape(-1, c)
    return out.permute(0, 3, 1, 2)


def _tokens_layer(layer: nn.Module, tokens: Tensor) -> Tensor:
    """Apply a channel-last NHWC layer to (B, L, C) tokens (GRN then normalises over the visible tokens)."""
    return layer(tokens.unsqueeze(2)).squeeze(2)


class MaskedConvNeXtV2Block(nn.Module):
    """ConvNeXt-V2 block with masked (sparse-emulating) operations.

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int, optional
        Output channels (defaults to ``in_channels``).
    kernel_size : int
        Depthwise kernel size.
    stride : int
        Depthwise stride.
    mlp_ratio : int
        MLP expansion.
    drop_path : float
        Stochastic depth rate.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 7,
        stride: int = 1,
        mlp_ratio: int = 4,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.dwconv = create_conv2d(in_channels, out_channels, kernel_size, stride=stride, depthwise=True)
        self.layernorm = nn.LayerNorm(out_channels)
        self.mlp = GlobalResponseNormMlp(out_channels, mlp_ratio * out_channels, out_channels)
        if in_channels != out_channels or stride > 1:
            self.shortcut = Downsample(in_channels, out_channels, stride=stride)
        else:
            self.shortcut = nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, unmasked: BoolTensor | None = None) -> Tensor:
        """Apply the block; ``unmasked`` (B, 1, H, W) marks the visible pixels.

        Masked-out pixels are exactly zero in the output (the residual included), so nothing of a hidden pixel
        leaks into the features; with an all-visible mask the output equals the unmasked forward.
        """
        shortcut = self.shortcut(x)
        if unmasked is not None:
            x = x * unmasked
        x = self.dwconv(x)
        if unmasked is not None:
            x = x * unmasked
        out_shape = x.shape
        tokens = masked_patchify(x, unmasked)
        tokens = _tokens_layer(self.mlp, self.layernorm(tokens))
        x = masked_unpatchify(tokens, out_shape, unmasked)
        out = shortcut + self.drop_path(x)
        return out if unmasked is None else out * unmasked


class MaskedConvNeXtV2Stage(nn.Module):
    """Downsampling followed by masked ConvNeXt-V2 blocks.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels before and after the stage.
    kernel_size : int
        Depthwise kernel size.
    stride : int
        Downsampling factor.
    num_blocks : int
        Number of blocks.
    drop_path_rates : Sequence[float], optional
        Stochastic depth rate per block.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 7,
        stride: int = 2,
        num_blocks: int = 2,
        drop_path_rates: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        drop_path_rates = [0.0] * num_blocks if drop_path_rates is None else list(drop_path_rates)
        if len(drop_path_rates) != num_blocks:
            raise ValueError(
                f"MaskedConvNeXtV2Stage: got {len(drop_path_rates)} drop_path_rates for {num_blocks} blocks"
            )
        if in_channels != out_channels or stride > 1:
            self.downsample = nn.Sequential(
                LayerNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, kernel_size=stride, stride=stride)
            )
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.ModuleList(
            MaskedConvNeXtV2Block(out_channels, out_channels, kernel_size=kernel_size, drop_path=rate)
            for rate in drop_path_rates
        )

    def forward(self, x: Tensor, unmasked: BoolTensor | None = None) -> Tensor:
        """Downsample then run the blocks with the mask upsampled to this stage's resolution."""
        x = self.downsample(x)
        if unmasked is not None:
            unmasked = upsample_mask(unmasked, x.shape)
        for block in self.blocks:
            x = block(x, unmasked)
        return x


class MaskedAdaptiveProjection(nn.Module):
    """Patch embedding for 3D stacks (depth folded into channels) or single 2D planes.

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels and embedding channels.
    kernel_size_2d : int or tuple[int, int]
        Patch size in y and x: one int for square patches or ``(ky, kx)``.
    kernel_depth : int
        Patch size in depth (3D inputs).
    in_stack_depth : int
        Depth of 3D inputs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size_2d: int | tuple[int, int] = 4,
        kernel_depth: int = 5,
        in_stack_depth: int = 5,
    ) -> None:
        super().__init__()
        kernel_yx = (kernel_size_2d, kernel_size_2d) if isinstance(kernel_size_2d, int) else tuple(kernel_size_2d)
        if len(kernel_yx) != 2 or min(kernel_yx) < 1:
            raise ValueError(
                f"MaskedAdaptiveProjection: kernel_size_2d must be a positive int or a (ky, kx) pair, "
                f"got {kernel_size_2d}"
            )
        ratio = in_stack_depth // kernel_depth
        kernel_3d = (kernel_depth, *kernel_yx)
        self.conv3d = nn.Conv3d(in_channels, out_channels // ratio, kernel_size=kernel_3d, stride=kernel_3d)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_yx, stride=kernel_yx)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: Tensor, unmasked: BoolTensor | None = None) -> Tensor:
        """Project (B, C, D, H, W), or a 2D (B, C, H, W) / (B, C, 1, H, W) input, to (B, out_channels, H/ky, W/kx)."""
        if x.ndim not in (4, 5):
            raise ValueError(
                f"MaskedAdaptiveProjection: expected (B, C, H, W) or (B, C, D, H, W) input, got shape {tuple(x.shape)}"
            )
        if x.ndim == 5 and x.shape[2] > 1:
            depth, kernel_depth = x.shape[2], self.conv3d.kernel_size[0]
            if self.conv3d.out_channels * (depth // kernel_depth) != self.norm.normalized_shape[0]:
                raise ValueError(
                    f"MaskedAdaptiveProjection: input depth {depth} with kernel_depth {kernel_depth} does not give "
                    f"{self.norm.normalized_shape[0]} channels; pass a stack of in_stack_depth slices or a single plane"
                )
            x = self.conv3d(x)
            b, c, d, h, w = x.shape
            x = x.reshape(b, c * d, h, w)
        else:
            x = self.conv2d(x if x.ndim == 4 else x[:, :, 0])
        if unmasked is not None:
            unmasked = upsample_mask(unmasked, x.shape)
        out_shape = x.shape
        return masked_unpatchify(self.norm(masked_patchify(x, unmasked)), out_shape, unmasked)


class MaskedMultiscaleEncoder(nn.Module):
    """Masked ConvNeXt-V2 encoder returning one feature map per stage.

    Parameters
    ----------
    in_channels : int
        Input channels.
    stage_blocks : Sequence[int]
        Blocks per stage.
    dims : Sequence[int]
        Channels per stage.
    drop_path_rate : float
        Maximum stochastic depth rate (linearly increasing over blocks).
    stem_kernel_size : tuple[int, int, int]
        Patch size of the stem, (depth, y, x).
    in_stack_depth : int
        Input depth.
    """

    def __init__(
        self,
        in_channels: int,
        stage_blocks: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        in_stack_depth: int = 5,
    ) -> None:
        super().__init__()
        self.stem = MaskedAdaptiveProjection(
            in_channels,
            dims[0],
            kernel_size_2d=stem_kernel_size[1],
            kernel_depth=stem_kernel_size[0],
            in_stack_depth=in_stack_depth,
        )
        rates = torch.linspace(0, drop_path_rate, sum(stage_blocks)).tolist()
        self.stages = nn.ModuleList()
        for i, num_blocks in enumerate(stage_blocks):
            start = sum(stage_blocks[:i])
            self.stages.append(
                MaskedConvNeXtV2Stage(
                    dims[i - 1] if i > 0 else dims[0],
                    dims[i],
                    stride=2 if i > 0 else 1,
                    num_blocks=num_blocks,
                    drop_path_rates=rates[start : start + num_blocks],
                )
            )
        self.total_stride = stem_kernel_size[1] * 2 ** (len(self.stages) - 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d | nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: Tensor, mask_ratio: float = 0.0) -> tuple[list[Tensor], BoolTensor | None]:
        """Encode (B, C, D, H, W); return the stage features and the full-resolution mask (None if ratio 0)."""
        input_shape = x.shape
        mask = generate_mask(input_shape, self.total_stride, mask_ratio, x.device) if mask_ratio > 0 else None
        unmasked = None if mask is None else ~mask
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x, unmasked)
            features.append(x)
        return features, None if mask is None else upsample_mask(mask, input_shape)


class FullyConvolutionalMAE(nn.Module):
    """FCMAE for virtual-staining pre-training and fine-tuning.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    encoder_blocks : Sequence[int]
        Blocks per encoder stage.
    dims : Sequence[int]
        Channels per encoder stage.
    encoder_drop_path_rate : float
        Stochastic depth rate of the encoder.
    stem_kernel_size : tuple[int, int, int]
        Patch size of the stem, (depth, y, x).
    in_stack_depth : int
        Input (and output) depth.
    decoder_conv_blocks : int
        Refinement blocks per decoder stage.
    pretraining : bool
        Return ``(recon, mask)`` instead of ``recon``.
    head_conv : bool
        Use the convolutional :class:`PixelToVoxelHead` instead of the parameter-free shuffle head.
    head_conv_expansion_ratio : int
        Width multiplier of the convolutional head.
    head_conv_pool : bool
        Pad-pool smoothing in the convolutional head.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        encoder_blocks: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        encoder_drop_path_rate: float = 0.0,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        in_stack_depth: int = 5,
        decoder_conv_blocks: int = 1,
        pretraining: bool = True,
        head_conv: bool = False,
        head_conv_expansion_ratio: int = 4,
        head_conv_pool: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.encoder = MaskedMultiscaleEncoder(
            in_channels=in_channels,
            stage_blocks=encoder_blocks,
            dims=dims,
            drop_path_rate=encoder_drop_path_rate,
            stem_kernel_size=stem_kernel_size,
            in_stack_depth=in_stack_depth,
        )
        stem_xy = stem_kernel_size[1]
        decoder_channels = list(reversed(dims))
        if head_conv:
            decoder_channels[-1] = (in_stack_depth + 2) * in_channels * 2**2 * head_conv_expansion_ratio
        else:
            decoder_channels[-1] = out_channels * in_stack_depth * stem_xy**2
        self.decoder = UNeXt2Decoder(
            decoder_channels,
            norm_name="instance",
            mode="pixelshuffle",
            conv_blocks=decoder_conv_blocks,
            strides=[2] * (len(dims) - 1) + [stem_xy],
            upsample_pre_conv=None,
        )
        if head_conv:
            self.head = PixelToVoxelHead(
                decoder_channels[-1], out_channels, in_stack_depth, head_conv_expansion_ratio, pool=head_conv_pool
            )
        else:
            self.head = PixelToVoxelShuffleHead(
                decoder_channels[-1], out_channels, in_stack_depth, xy_scaling=stem_xy, pool=True
            )
        self.out_stack_depth = in_stack_depth
        self.num_blocks = len(dims) * int(math.log2(stem_xy))
        self.pretraining = pretraining

    def forward(self, x: Tensor, mask_ratio: float = 0.0) -> tuple[Tensor, BoolTensor | None] | Tensor:
        """Reconstruct (B, C, D, H, W) with D in {1, in_stack_depth}; H, W multiples of the total stride.

        Returns ``(recon, mask)`` when ``pretraining`` else ``recon`` of shape (B, out, in_stack_depth, H, W).
        """
        stride = self.encoder.total_stride
        check_input_shape(
            x,
            type(self).__name__,
            ("B", "C", "D", "H", "W"),
            fixed={"C": self.in_channels, "D": tuple(sorted({1, self.out_stack_depth}))},
            multiple_of={"H": stride, "W": stride},
        )
        if not 0 <= mask_ratio < 1:
            raise ValueError(f"FullyConvolutionalMAE: mask_ratio must be in [0, 1), got {mask_ratio}")
        features, mask = self.encoder(x, mask_ratio)
        features.reverse()
        recon = self.head(self.decoder(features))
        return (recon, mask) if self.pretraining else recon
