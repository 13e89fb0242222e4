"""The networks: generator G, measurement encoder EN, BEGAN discriminator, and the GE1 autoencoder's decoder."""

from gecodec.models.began import BeganDiscriminator, DiscriminatorConfig
from gecodec.models.encoder import AutoencoderDecoder, Encoder, EncoderConfig
from gecodec.models.generator import Generator, GeneratorConfig

__all__ = [
    "AutoencoderDecoder",
    "BeganDiscriminator",
    "DiscriminatorConfig",
    "Encoder",
    "EncoderConfig",
    "Generator",
    "GeneratorConfig",
]
