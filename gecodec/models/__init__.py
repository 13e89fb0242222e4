"""The networks: generator G, measurement encoder EN, the discriminators, and the GE1 autoencoder's decoder."""

from gecodec.models.began import BeganDiscriminator, DiscriminatorConfig
from gecodec.models.conv_discriminator import ConvDiscriminator, ConvDiscriminatorConfig
from gecodec.models.encoder import AutoencoderDecoder, Encoder, EncoderConfig
from gecodec.models.generator import Generator, GeneratorConfig

__all__ = [
    "AutoencoderDecoder",
    "BeganDiscriminator",
    "ConvDiscriminator",
    "ConvDiscriminatorConfig",
    "DiscriminatorConfig",
    "Encoder",
    "EncoderConfig",
    "Generator",
    "GeneratorConfig",
]
