"""A cheap strided-conv discriminator with spectral norm, for the non-saturating GAN loss."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class ConvDiscriminatorConfig:
    image_size: int = 64
    channels: int = 32  # width of the first layer; doubles at each stride-2 layer

    def to_dict(self) -> dict:
        return asdict(self)


class ConvDiscriminator(nn.Module):
    """DCGAN-style critic down to 4x4, one logit per image. Far cheaper per step than BEGAN's autoencoder D."""

    def __init__(self, config: ConvDiscriminatorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c_out, side = 3, config.channels, config.image_size
        while side > 4:
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in, c_out, side = c_out, c_out * 2, side // 2
        self.features = nn.Sequential(*layers)
        self.fc = spectral_norm(nn.Linear(c_in * side * side, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1)).squeeze(1)
