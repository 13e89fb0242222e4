"""Measurement encoders EN. GE1: an autoencoder EN -> small decoder, trained on a mix of real images and
images from G, so that EN measures well the images the decoder's search can produce. GE0: the encoder
half of the trained BEGAN discriminator, used as it is.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gecodec.errors import TrainingError
from gecodec.models import AutoencoderDecoder, Encoder, EncoderConfig, Generator
from gecodec.models.began import BeganEncoder
from gecodec.train.checkpoint import save_checkpoint, start_or_resume
from gecodec.train.data import sample_batches, to_float
from gecodec.train.distributed import Runtime
from gecodec.train.gan import GanTrainConfig, sample_latent


@dataclass
class EncoderTrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder_channels: int = 32  # small on purpose: EN must carry the information itself
    generated_fraction: float = 0.5  # share of each batch drawn from G
    batch_size: int = 64
    lr: float = 1e-3
    steps: int = 20_000
    minutes: float | None = None  # the cosine schedule ends with whichever of steps and minutes ends first
    checkpoint_every: int = 500
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_lr(base: float, progress: float) -> float:
    """Cosine decay to zero over progress 0..1 (of the step count or of the time budget, whichever ends first)."""
    return 0.5 * base * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def train_encoder(data: torch.Tensor, generator: Generator, config: EncoderTrainConfig,
                  run_dir: str | Path | None = None, *, resume: bool = False, runtime: Runtime | None = None
                  ) -> tuple[Encoder, AutoencoderDecoder, dict]:
    """Train EN and its small decoder on uint8 images; returns both (on the CPU, in eval mode) and a summary
    for the model card.

    With ``run_dir`` the run checkpoints to run_dir/checkpoint.pt and ``resume`` continues it.
    """
    device = (runtime or Runtime(torch.device("cpu"))).device
    ckpt_path = Path(run_dir) / "checkpoint.pt" if run_dir is not None else None
    state = start_or_resume(ckpt_path, resume, config.to_dict()) if ckpt_path else None
    torch.manual_seed(config.seed)
    encoder, decoder = Encoder(config.encoder), AutoencoderDecoder(config.encoder, config.decoder_channels)
    step, elapsed, loss = 0, 0.0, float("nan")
    if state is not None:
        encoder.load_state_dict(state["encoder"]), decoder.load_state_dict(state["decoder"])
        step, elapsed, loss = state["step"], state["elapsed"], state["final_train_mse"]
    encoder, decoder, generator = encoder.to(device), decoder.to(device), generator.to(device)
    optim = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=config.lr)
    if state is not None:
        optim.load_state_dict(state["optim"])

    def checkpoint() -> None:
        if ckpt_path is not None:
            save_checkpoint({"encoder": encoder.state_dict(), "decoder": decoder.state_dict(),
                             "optim": optim.state_dict(), "step": step, "elapsed": elapsed,
                             "final_train_mse": loss, "config": config.to_dict()}, ckpt_path)

    def progress() -> float:
        spent = step / config.steps
        return max(spent, elapsed / (config.minutes * 60)) if config.minutes else spent

    batches = sample_batches(data.to(device), config.batch_size, seed=config.seed + step)
    z_rng = torch.Generator().manual_seed(config.seed + step + 1)
    n_fake = round(config.batch_size * config.generated_fraction)
    started, first_step = time.monotonic() - elapsed, step
    bar = tqdm(total=config.steps, initial=step, desc="encoder", unit="step")
    while progress() < 1.0:
        for group in optim.param_groups:
            group["lr"] = cosine_lr(config.lr, progress())
        x = next(batches)
        if n_fake:
            with torch.no_grad():
                x[:n_fake] = generator(sample_latent(n_fake, generator.config, z_rng).to(device)).clamp(-1, 1)
        mse = F.mse_loss(decoder(encoder(x)), x)
        optim.zero_grad(set_to_none=True)
        mse.backward()
        optim.step()
        step, elapsed, loss = step + 1, time.monotonic() - started, mse.item()
        bar.update(1)
        bar.set_postfix(mse=f"{loss:.4f}", min=f"{elapsed / 60:.1f}")
        if step % config.checkpoint_every == 0:
            checkpoint()
    bar.close()
    if step > first_step:
        checkpoint()
    summary = {"kind": "ge1", "config": config.encoder.to_dict(), "steps": step, "minutes": round(elapsed / 60, 1),
               "final_train_mse": round(loss, 5), "generated_fraction": config.generated_fraction}
    encoder, decoder = encoder.cpu().eval().requires_grad_(False), decoder.cpu().eval().requires_grad_(False)
    generator.cpu()
    return encoder, decoder, summary


def ge0_encoder(gan_state: dict) -> BeganEncoder:
    """GE0: the encoder half of a BEGAN run's discriminator, with no further training. Its m is D's embedding size."""
    config = GanTrainConfig.from_dict(gan_state["config"])
    if config.loss != "began":
        raise TrainingError(f"GE0 needs a BEGAN discriminator; this run used the {config.loss} loss (use --kind ge1)")
    encoder = BeganEncoder(config.discriminator)
    encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in gan_state["d"].items() if k.startswith("encoder.")})
    return encoder.eval().requires_grad_(False)


@torch.no_grad()
def measure(encoder: torch.nn.Module, data: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """EN's outputs (N, m) on uint8 images."""
    with torch.no_grad():
        return torch.cat([encoder(to_float(data[i : i + batch_size])) for i in range(0, len(data), batch_size)])


def calibrate(outputs: torch.Tensor, quantile: float = 0.0005) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension quantizer range: the [q, 1 - q] quantiles of EN's outputs (N, m) on training images.

    Clipping the rarest extremes spends the 2^bits levels where the values actually are.
    """
    lo, hi = torch.quantile(outputs, quantile, dim=0), torch.quantile(outputs, 1 - quantile, dim=0)
    return lo, torch.maximum(hi, lo + 1e-6)
