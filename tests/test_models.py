"""Network shapes follow their configuration: image sizes 64 and 128, latent 64 and 128, m 16 to 512."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gecodec.models import (
    AutoencoderDecoder,
    BeganDiscriminator,
    DiscriminatorConfig,
    Encoder,
    EncoderConfig,
    Generator,
    GeneratorConfig,
)


def conv_count(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in module.modules())


@pytest.mark.parametrize("size,latent", [(64, 128), (128, 64)])
def test_generator_output_matches_its_config(size, latent):
    g = Generator(GeneratorConfig(image_size=size, latent_dim=latent, channels=4))
    assert g(torch.zeros(2, latent)).shape == (2, 3, size, size)


def test_began_generator_for_64x64_has_9_convolutions_and_discriminator_encoder_12():
    assert conv_count(Generator(GeneratorConfig(channels=4))) == 9
    assert conv_count(BeganDiscriminator(DiscriminatorConfig(channels=4)).encoder) == 12


def test_tapered_generator_halves_its_width_per_upsampling():
    assert GeneratorConfig(channels=128, min_channels=16).block_widths() == [128, 64, 32, 16]
    assert GeneratorConfig(channels=64).block_widths() == [64, 64, 64, 64]


@pytest.mark.parametrize("size,depth,m", [(64, 4, 16), (64, 4, 512), (128, 5, 128)])
def test_encoder_measures_m_values(size, depth, m):
    config = EncoderConfig(image_size=size, m=m, depth=depth, filters=4)
    encoder = Encoder(config)
    assert encoder(torch.zeros(2, 3, size, size)).shape == (2, m)
    assert conv_count(encoder) == depth
    assert AutoencoderDecoder(config, channels=4)(torch.zeros(2, m)).shape == (2, 3, size, size)


def test_discriminator_reconstructs_at_its_size():
    d = BeganDiscriminator(DiscriminatorConfig(image_size=128, channels=4, embedding_dim=32))
    assert d(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 128, 128)


@pytest.mark.parametrize("size", [0, 48, 100])
def test_unsupported_image_size_is_refused(size):
    with pytest.raises(ValueError):
        Generator(GeneratorConfig(image_size=size))


def test_upsampling_matches_nearest_neighbour():
    from gecodec.models.generator import Upsample2x

    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(Upsample2x()(x), nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def test_dcgan_generator_doubles_resolution_with_each_transposed_convolution():
    config = GeneratorConfig(image_size=64, channels=32, arch="dcgan")
    assert config.block_widths() == [32, 16, 8, 4]
    g = Generator(config).eval()
    assert g(torch.zeros(2, 128)).shape == (2, 3, 64, 64)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 4


def test_unknown_generator_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown generator architecture"):
        GeneratorConfig(arch="vae")
