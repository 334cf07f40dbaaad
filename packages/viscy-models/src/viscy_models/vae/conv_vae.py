"""ConvVAE: a convolutional VAE for two-channel 2D images whose channels have different ranges.

Channel 0 is non-negative (e.g. a magnitude or intensity, decoded through Softplus) and channel 1 is bounded
to [-1, 1] (e.g. a normalised phase or frequency, decoded through Tanh).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from viscy_models._validation import check_input_shape

__all__ = ["ConvDecoder", "ConvEncoder", "ConvVAE"]

IN_CHANNELS = 2
LOGVAR_RANGE = (-20.0, 20.0)


def _padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


class ConvEncoder(nn.Module):
    """Stride-2 conv blocks (Conv2d k3 s2 p1, BatchNorm2d, ReLU, Dropout2d) then ``fc_mu`` / ``fc_logvar``.

    The input is zero-padded (bottom/right) to a multiple of ``2 ** len(channels)``; ``fc_mu`` and ``fc_logvar``
    are sized lazily from the first input.

    Parameters
    ----------
    latent_dim : int
        Latent dimension.
    channels : Sequence[int]
        Output channels of each conv block.
    dropout : float
        Dropout2d probability.
    """

    def __init__(self, latent_dim: int = 128, channels: Sequence[int] = (64, 128, 256, 512, 512), dropout: float = 0.1):
        super().__init__()
        widths = [IN_CHANNELS, *channels]
        self.downsampling = 2 ** len(channels)
        self.conv = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                    nn.Dropout2d(dropout),
                )
                for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        self.fc_mu = nn.LazyLinear(latent_dim)
        self.fc_logvar = nn.LazyLinear(latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Encode (B, 2, H, W) into ``mu`` and clamped ``logvar``, each (B, latent_dim)."""
        height, width = x.shape[-2:]
        x = F.pad(
            x, (0, _padded_size(width, self.downsampling) - width, 0, _padded_size(height, self.downsampling) - height)
        )
        features = self.conv(x).flatten(1)
        logvar = self.fc_logvar(features).clamp(*LOGVAR_RANGE)
        return self.fc_mu(features), logvar


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder` with ConvTranspose2d blocks and a split output activation.

    Parameters
    ----------
    latent_dim : int
        Latent dimension.
    channels : Sequence[int]
        The encoder's channels (the decoder runs them in reverse, ending at 2 channels).
    padded_shape : tuple[int, int]
        Padded (H, W) the decoder reconstructs before cropping.
    dropout : float
        Dropout2d probability.
    """

    def __init__(
        self,
        latent_dim: int = 128,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        padded_shape: tuple[int, int] = (128, 96),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        downsampling = 2 ** len(channels)
        self.bottleneck_shape = (channels[-1], padded_shape[0] // downsampling, padded_shape[1] // downsampling)
        self.fc = nn.Linear(latent_dim, channels[-1] * self.bottleneck_shape[1] * self.bottleneck_shape[2])
        widths = [*reversed(channels), IN_CHANNELS]
        blocks = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers = [nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=1)]
            if i < len(channels) - 1:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.Dropout2d(dropout)]
            blocks.append(nn.Sequential(*layers))
        self.deconv = nn.Sequential(*blocks)

    def forward(self, z: Tensor, output_shape: tuple[int, int]) -> Tensor:
        """Decode (B, latent_dim) to (B, 2, *output_shape): Softplus on channel 0, Tanh on channel 1."""
        x = self.fc(z).reshape(z.shape[0], *self.bottleneck_shape)
        x = self.deconv(x)[..., : output_shape[0], : output_shape[1]]
        return torch.cat([F.softplus(x[:, :1]), torch.tanh(x[:, 1:])], dim=1)


class ConvVAE(nn.Module):
    """Two-channel convolutional VAE (about 10 M parameters at the defaults).

    Parameters
    ----------
    latent_dim : int
        Latent dimension.
    input_shape : tuple[int, int]
        Default (H, W) of the images, used by :meth:`sample` and to size the decoder; inputs must pad to the same
        multiple of ``2 ** len(channels)``.
    channels : Sequence[int]
        Encoder channel widths (the decoder mirrors them).
    dropout : float
        Dropout2d probability in every block.

    Examples
    --------
    >>> model = ConvVAE()
    >>> recon, mu, logvar = model(torch.rand(4, 2, 128, 94))
    >>> model.sample(3, torch.device("cpu")).shape
    torch.Size([3, 2, 128, 94])
    """

    def __init__(
        self,
        latent_dim: int = 128,
        input_shape: tuple[int, int] = (128, 94),
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.input_shape = tuple(input_shape)
        self.downsampling = 2 ** len(channels)
        self.padded_shape = tuple(_padded_size(s, self.downsampling) for s in self.input_shape)
        self.encoder = ConvEncoder(latent_dim, channels, dropout)
        self.decoder = ConvDecoder(latent_dim, channels, self.padded_shape, dropout)

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """Sample ``z`` in training mode; return ``mu`` in eval mode."""
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encode and decode (B, 2, H, W); returns ``(recon, mu, logvar)`` with ``recon`` shaped like ``x``."""
        check_input_shape(x, type(self).__name__, ("B", "C", "H", "W"), fixed={"C": IN_CHANNELS})
        height, width = x.shape[-2:]
        lower = [p - self.downsampling + 1 for p in self.padded_shape]
        if not (lower[0] <= height <= self.padded_shape[0] and lower[1] <= width <= self.padded_shape[1]):
            raise ValueError(
                f"ConvVAE: expected input of shape (B, C=2, H, W) with H in [{lower[0]}, {self.padded_shape[0]}] "
                f"and W in [{lower[1]}, {self.padded_shape[1]}] (padded to {self.padded_shape}), got {tuple(x.shape)}"
            )
        mu, logvar = self.encoder(x)
        recon = self.decoder(self.reparameterize(mu, logvar), (height, width))
        return recon, mu, logvar

    @torch.no_grad()
    def sample(self, n: int, device: torch.device | str) -> Tensor:
        """Decode ``n`` draws from the prior to (n, 2, *input_shape).

        The decoder runs in eval mode (running BatchNorm statistics, no dropout) and is left in the mode it
        was in, so sampling never changes the model.
        """
        z = torch.randn(n, self.latent_dim, device=device)
        was_training = self.decoder.training
        self.decoder.eval()
        try:
            return self.decoder(z, self.input_shape)
        finally:
            self.decoder.train(was_training)
