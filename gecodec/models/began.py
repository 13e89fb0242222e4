"""BEGAN discriminator: an autoencoder whose encoder half is the GE0 measurement encoder."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from gecodec.models.generator import BASE_RESOLUTION, BeganDecoder, check_image_size


@dataclass(frozen=True)
class DiscriminatorConfig:
    image_size: int = 64
    embedding_dim: int = 128  # h in the BEGAN paper; GE0's m
    channels: int = 64

    @property
    def m(self) -> int:
        """The embedding size, as GE0's number of measurements."""
        return self.embedding_dim

    def to_dict(self) -> dict:
        return asdict(self)


class BeganEncoder(nn.Module):
    """Conv encoder: for 64x64, 1 + 3*3 + 2 = 12 conv layers, channels growing by n per downsampling."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        n = config.channels
        downsamplings = check_image_size(config.image_size)
        layers: list[nn.Module] = [nn.Conv2d(3, n, 3, padding=1), nn.ELU()]
        for level in range(1, downsamplings + 1):
            c_in, c_out = level * n, (level + 1) * n
            layers += [
                nn.Conv2d(c_in, c_in, 3, padding=1), nn.ELU(),
                nn.Conv2d(c_in, c_in, 3, padding=1), nn.ELU(),
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ELU(),
            ]
        c_last = (downsamplings + 1) * n
        layers += [nn.Conv2d(c_last, c_last, 3, padding=1), nn.ELU(), nn.Conv2d(c_last, c_last, 3, padding=1), nn.ELU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_last * BASE_RESOLUTION * BASE_RESOLUTION, config.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class BeganDiscriminator(nn.Module):
    """D(x) = decoder(encoder(x)); trained so real images reconstruct well and generated ones do not."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = BeganEncoder(config)
        widths = [config.channels] * (check_image_size(config.image_size) + 1)
        self.decoder = BeganDecoder(config.embedding_dim, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
