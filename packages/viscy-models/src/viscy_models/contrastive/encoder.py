"""ContrastiveEncoder: a 3D-to-2D stem, a timm backbone and a projection MLP."""

from typing import Literal

from torch import Tensor, nn

from viscy_models._components.stems import StemDepthtoChannels
from viscy_models._hub import create_timm_model
from viscy_models._validation import check_input_shape

__all__ = ["ContrastiveEncoder", "projection_mlp"]


def projection_mlp(in_dims: int, hidden_dims: int, out_dims: int) -> nn.Sequential:
    """Two-layer projection head: Linear, BatchNorm1d, ReLU, Linear, BatchNorm1d.

    Parameters
    ----------
    in_dims : int
        Embedding size.
    hidden_dims : int
        Hidden width.
    out_dims : int
        Projection size.

    Returns
    -------
    nn.Sequential
        The head (state-dict indices 0, 1, 3, 4).
    """
    return nn.Sequential(
        nn.Linear(in_dims, hidden_dims),
        nn.BatchNorm1d(hidden_dims),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dims, out_dims),
        nn.BatchNorm1d(out_dims),
    )


class ContrastiveEncoder(nn.Module):
    """Encoder for contrastive learning on 3D stacks (DynaCLR).

    A 3D convolution stem folds the depth axis into the channels expected by a timm 2D backbone, whose own
    stem convolution is removed; the pooled backbone features are the embedding and a projection MLP maps them
    to the contrastive space.

    Parameters
    ----------
    backbone : {"convnext_tiny", "convnextv2_tiny", "resnet50"} or str
        timm backbone name: the DynaCLR ones, or any other timm ``convnext*``/``resnet*`` model (e.g. the
        small ``convnext_atto`` for CPU runs).
    in_channels : int
        Input channels.
    in_stack_depth : int
        Input depth (1 for 2D images with ``stem_kernel_size=(1, 4, 4)``).
    stem_kernel_size : tuple[int, int, int]
        Kernel of the 3D stem, (depth, y, x).
    stem_stride : tuple[int, int, int]
        Stride of the 3D stem, (depth, y, x).
    embedding_dim : int
        Hidden width of the projection MLP (the embedding size is the backbone's ``num_features``).
    projection_dim : int
        Output size of the projection MLP.
    drop_path_rate : float
        Stochastic depth rate of the backbone.
    pretrained : bool
        Load ImageNet weights for the backbone from the Hugging Face hub.

    Examples
    --------
    >>> encoder = ContrastiveEncoder("convnext_tiny", in_channels=2, in_stack_depth=30, projection_dim=32)
    >>> features, projections = encoder(torch.rand(2, 2, 30, 160, 160))  # (2, 768), (2, 32)
    """

    def __init__(
        self,
        backbone: Literal["convnext_tiny", "convnextv2_tiny", "resnet50"] | str,
        in_channels: int,
        in_stack_depth: int,
        stem_kernel_size: tuple[int, int, int] = (5, 4, 4),
        stem_stride: tuple[int, int, int] = (5, 4, 4),
        embedding_dim: int = 768,
        projection_dim: int = 128,
        drop_path_rate: float = 0.0,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if not (backbone.startswith("convnext") or backbone.startswith("resnet")):
            raise ValueError(
                f"ContrastiveEncoder: backbone must be a timm convnext* or resnet* model, got {backbone!r}"
            )
        self.backbone = backbone
        self.in_channels = in_channels
        self.in_stack_depth = in_stack_depth
        self.stem_kernel_size = tuple(stem_kernel_size)
        self.stem_stride = tuple(stem_stride)
        encoder = create_timm_model(
            backbone, pretrained, features_only=False, drop_path_rate=drop_path_rate, num_classes=embedding_dim
        )
        if backbone.startswith("convnext"):
            encoder_channels = encoder.stem[0].out_channels
            encoder.stem[0] = nn.Identity()
            encoder.head.fc = nn.Identity()
        else:
            encoder_channels = encoder.conv1.out_channels
            encoder.conv1 = nn.Identity()
            encoder.fc = nn.Identity()
        self.stem = StemDepthtoChannels(in_channels, in_stack_depth, encoder_channels, stem_kernel_size, stem_stride)
        self.encoder = encoder
        self.projection = projection_mlp(encoder.num_features, embedding_dim, projection_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Embed a batch of stacks.

        Parameters
        ----------
        x : Tensor
            (B, in_channels, in_stack_depth, H, W); H and W at least 8 times the stem's yx stride.

        Returns
        -------
        tuple[Tensor, Tensor]
            Embedding (B, num_features) and projection (B, projection_dim).
        """
        min_yx = 8 * max(self.stem_stride[1:])
        check_input_shape(
            x,
            type(self).__name__,
            ("B", "C", "D", "H", "W"),
            fixed={"C": self.in_channels, "D": self.in_stack_depth},
            minimum={"H": min_yx, "W": min_yx},
        )
        embedding = self.encoder(self.stem(x))
        return embedding, self.projection(embedding)
