"""GE1 encoder training: an autoencoder EN -> small decoder, on a mix of real and generated images.

Training on G's own output too makes EN measure well the images the decoder's search can produce.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gecodec.models import AutoencoderDecoder, Encoder, EncoderConfig, Generator
from gecodec.train.data import sample_batches, to_float
from gecodec.train.gan import sample_latent


@dataclass
class EncoderTrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder_channels: int = 32
    generated_fraction: float = 0.5  # share of each batch drawn from G
    batch_size: int = 64
    lr: float = 1e-3
    steps: int = 20_000
    minutes: float | None = None
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def train_encoder(data: torch.Tensor, generator: Generator, config: EncoderTrainConfig
                  ) -> tuple[Encoder, AutoencoderDecoder, dict]:
    """Train EN and its small decoder; returns them and a summary (steps, minutes, final loss)."""
    torch.manual_seed(config.seed)
    encoder, decoder = Encoder(config.encoder), AutoencoderDecoder(config.encoder, config.decoder_channels)
    optim = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=config.steps)
    batches = sample_batches(data, config.batch_size, seed=config.seed)
    n_fake = round(config.batch_size * config.generated_fraction)
    started, step, loss = time.monotonic(), 0, torch.tensor(0.0)
    bar = tqdm(total=config.steps, desc="encoder", unit="step")
    while step < config.steps:
        x = next(batches)
        if n_fake:
            with torch.no_grad():
                x[:n_fake] = generator(sample_latent(n_fake, generator.config.latent_dim)).clamp(-1, 1)
        loss = F.mse_loss(decoder(encoder(x)), x)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        schedule.step()
        step += 1
        bar.update(1)
        bar.set_postfix(mse=f"{loss.item():.4f}")
        if config.minutes is not None and time.monotonic() - started >= config.minutes * 60:
            break
    bar.close()
    summary = {"steps": step, "minutes": round((time.monotonic() - started) / 60, 1), "final_train_mse": round(loss.item(), 5)}
    return encoder.eval().requires_grad_(False), decoder.eval().requires_grad_(False), summary


@torch.no_grad()
def calibrate(encoder: Encoder, data: torch.Tensor, quantile: float = 0.0005, batch_size: int = 256
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension quantizer range: the [q, 1 - q] quantiles of EN's outputs on training images.

    Clipping the rarest extremes spends the 2^bits levels where the values actually are.
    """
    outputs = torch.cat([encoder(to_float(data[i : i + batch_size])) for i in range(0, len(data), batch_size)])
    lo, hi = torch.quantile(outputs, quantile, dim=0), torch.quantile(outputs, 1 - quantile, dim=0)
    return lo, torch.maximum(hi, lo + 1e-6)
