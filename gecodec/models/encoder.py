"""The measurement encoder EN (the GE paper's GE1 family) and the small decoder it is trained with."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from gecodec.models.generator import BASE_RESOLUTION, Upsample2x, check_image_size


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int = 64
    m: int = 128  # measurement dimension
    depth: int = 4  # d: number of stride-2 conv layers
    filters: int = 16  # f: layer i has i * f filters

    def to_dict(self) -> dict:
        return asdict(self)


class Encoder(nn.Module):
    """GE1(d, f, m): d stride-2 4x4 convolutions with i*f filters in layer i, then a linear map to m."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        if config.image_size % (2**config.depth):
            raise ValueError(f"image size {config.image_size} is not divisible by 2^{config.depth}")
        self.config = config
        layers: list[nn.Module] = []
        in_channels = 3
        for i in range(1, config.depth + 1):
            layers += [nn.Conv2d(in_channels, i * config.filters, 4, stride=2, padding=1), nn.ELU()]
            in_channels = i * config.filters
        self.features = nn.Sequential(*layers)
        side = config.image_size // 2**config.depth
        self.fc = nn.Linear(in_channels * side * side, config.m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class AutoencoderDecoder(nn.Module):
    """A deliberately small decoder m -> image, so that EN must carry the information itself."""

    def __init__(self, config: EncoderConfig, channels: int = 32) -> None:
        super().__init__()
        self.channels = channels
        upsamplings = check_image_size(config.image_size)
        self.fc = nn.Linear(config.m, BASE_RESOLUTION * BASE_RESOLUTION * channels)
        layers: list[nn.Module] = []
        for _ in range(upsamplings):
            layers += [Upsample2x(), nn.Conv2d(channels, channels, 3, padding=1), nn.ELU()]
        layers.append(nn.Conv2d(channels, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(m).view(-1, self.channels, BASE_RESOLUTION, BASE_RESOLUTION))


