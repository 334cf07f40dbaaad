"""ResNet3dEncoder: a MONAI 3D ResNet with a projection MLP."""

from monai.networks.nets.resnet import ResNetFeatures
from torch import Tensor, nn

from viscy_models._hub import load_pretrained
from viscy_models._validation import check_input_shape
from viscy_models.contrastive.encoder import projection_mlp

__all__ = ["ResNet3dEncoder"]


class ResNet3dEncoder(nn.Module):
    """3D ResNet encoder (MONAI ``ResNetFeatures``) for contrastive learning on volumes.

    Parameters
    ----------
    backbone : str
        MONAI ResNet name, ``"resnet10"`` to ``"resnet200"``.
    in_channels : int
        Input channels.
    embedding_dim : int
        Channels of the last feature map (512 for resnet10/18/34, 2048 for resnet50 and deeper).
    projection_dim : int
        Output size of the projection MLP.
    pretrained : bool
        Load MedicalNet weights (only for ``in_channels=1``) from the Hugging Face hub.
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int = 1,
        embedding_dim: int = 512,
        projection_dim: int = 128,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if pretrained and in_channels != 1:
            raise ValueError(f"ResNet3dEncoder: pretrained MedicalNet weights need in_channels=1, got {in_channels}")
        if pretrained:
            self.encoder = load_pretrained(
                backbone, lambda: ResNetFeatures(backbone, pretrained=True, spatial_dims=3, in_channels=in_channels)
            )
        else:
            self.encoder = ResNetFeatures(backbone, pretrained=False, spatial_dims=3, in_channels=in_channels)
        if self.encoder.in_planes != embedding_dim:
            raise ValueError(
                f"ResNet3dEncoder: embedding_dim must equal the {backbone} output channels "
                f"{self.encoder.in_planes}, got {embedding_dim}"
            )
        self.in_channels = in_channels
        self.projection = projection_mlp(embedding_dim, embedding_dim, projection_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Embed (B, in_channels, D, H, W) volumes into ((B, embedding_dim), (B, projection_dim))."""
        check_input_shape(x, type(self).__name__, ("B", "C", "D", "H", "W"), fixed={"C": self.in_channels})
        feature_map = self.encoder(x)[-1]
        embedding = self.encoder.avgpool(feature_map).flatten(1)
        return embedding, self.projection(embedding)
