"""Generators G: BEGAN's (a linear layer to 8x8xn, then conv blocks with nearest-neighbour upsampling)
and a cheaper DCGAN-style one (transposed convolutions with batch norm)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

BASE_RESOLUTION = 8
ARCHITECTURES = ("began", "dcgan")


def check_image_size(image_size: int) -> int:
    """Return the number of x2 upsamplings from 8x8 to ``image_size``; reject sizes that are not 8 * 2^k."""
    steps = math.log2(image_size / BASE_RESOLUTION) if image_size >= BASE_RESOLUTION else -1
    if steps < 0 or steps != int(steps):
        raise ValueError(f"image size must be 8 * 2^k (16, 32, 64, 128, ...), got {image_size}")
    return int(steps)


@dataclass(frozen=True)
class GeneratorConfig:
    image_size: int = 64
    latent_dim: int = 128
    # began: n in the BEGAN paper, the width of the 8x8 block; dcgan: the width of the 4x4 block.
    channels: int = 64
    latent_prior: str = "normal"  # distribution G was trained on: "normal" N(0, 1) or "uniform" on [-1, 1]
    # began only. None keeps every block n wide (BEGAN). A number halves the width at each upsampling,
    # down to that floor: most of a constant-width G's cost is in its full-resolution block.
    min_channels: int | None = None
    arch: str = "began"  # bundles written before "dcgan" existed have no arch: they are BEGAN

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown generator architecture {self.arch!r} (choose from {', '.join(ARCHITECTURES)})")
        if self.latent_prior not in ("normal", "uniform"):
            raise ValueError(f"unknown latent prior {self.latent_prior!r} (normal or uniform)")
        check_image_size(self.image_size)

    def block_widths(self) -> list[int]:
        widths = [self.channels]
        if self.arch == "dcgan":  # the widths at 4x4 up to image_size / 2, halving at each x2
            return widths + [max(self.channels >> i, 1) for i in range(1, check_image_size(self.image_size) + 1)]
        for _ in range(check_image_size(self.image_size)):
            if self.min_channels is None:
                widths.append(self.channels)
            else:
                widths.append(max(widths[-1] // 2, self.min_channels))
        return widths

    def to_dict(self) -> dict:
        return asdict(self)


class Upsample2x(nn.Module):
    """Nearest-neighbour x2 upsampling written as expand + reshape.

    Same output as nn.Upsample(scale_factor=2), but its gradient is a plain sum instead of CUDA atomic
    adds, so the decoder's search is deterministic on the GPU too.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions with ELU, the building block of BEGAN's generator and decoder."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ELU(),
    )


class BeganDecoder(nn.Module):
    """Maps a vector to an image; used as G and as the decoder half of the BEGAN discriminator."""

    def __init__(self, input_dim: int, widths: list[int]) -> None:
        super().__init__()
        self.channels = widths[0]
        self.fc = nn.Linear(input_dim, BASE_RESOLUTION * BASE_RESOLUTION * widths[0])
        layers: list[nn.Module] = [conv_block(widths[0], widths[0])]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [Upsample2x(), conv_block(c_in, c_out)]
        layers.append(nn.Conv2d(widths[-1], 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(h).view(-1, self.channels, BASE_RESOLUTION, BASE_RESOLUTION)
        return self.body(x)


class DcganDecoder(nn.Module):
    """DCGAN's generator: a linear map to 4x4, then 4x4 transposed convolutions (stride 2) with batch norm."""

    def __init__(self, input_dim: int, widths: list[int]) -> None:
        super().__init__()
        self.channels = widths[0]
        self.fc = nn.Linear(input_dim, 16 * widths[0], bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, stride=2, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(h).view(-1, self.channels, 4, 4))


class Generator(nn.Module):
    """G: latent z -> image with pixels in about [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        decoder = DcganDecoder if config.arch == "dcgan" else BeganDecoder
        self.net = decoder(config.latent_dim, config.block_widths())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
