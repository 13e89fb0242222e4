"""GAN training for the generator G.

This loop uses the non-saturating GAN loss with a cheap spectrally normalised conv discriminator,
which learns faces in far fewer CPU-minutes than BEGAN's autoencoder discriminator.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gecodec.models import Generator, GeneratorConfig
from gecodec.models.conv_discriminator import ConvDiscriminator, ConvDiscriminatorConfig
from gecodec.train.checkpoint import ema_decay, load_checkpoint, save_checkpoint, update_ema
from gecodec.train.data import sample_batches
from gecodec.train.grid import save_grid


@dataclass
class GanTrainConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: ConvDiscriminatorConfig = field(default_factory=ConvDiscriminatorConfig)
    batch_size: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    steps: int = 100_000
    minutes: float | None = None  # stop early at this wall-clock budget
    sample_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def sample_latent(n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The prior of z: standard normal, the distribution the decoder's restarts start from."""
    return torch.randn(n, dim, generator=generator)


def train_gan(data: torch.Tensor, run_dir: str | Path, config: GanTrainConfig) -> Path:
    """Train G on uint8 images (N, 3, H, W); resume from run_dir/checkpoint.pt if present. Returns the checkpoint path."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    torch.manual_seed(config.seed)
    g = Generator(config.generator)
    d = ConvDiscriminator(config.discriminator)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    g_optim = torch.optim.Adam(g.parameters(), lr=config.lr, betas=config.betas)
    d_optim = torch.optim.Adam(d.parameters(), lr=config.lr, betas=config.betas)
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        g.load_state_dict(state["g"]), d.load_state_dict(state["d"]), g_ema.load_state_dict(state["g_ema"])
        g_optim.load_state_dict(state["g_optim"]), d_optim.load_state_dict(state["d_optim"])
        step, elapsed = state["step"], state["elapsed"]

    def checkpoint() -> None:
        save_checkpoint(
            {"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(),
             "d_optim": d_optim.state_dict(), "step": step, "elapsed": elapsed, "config": config.to_dict()},
            ckpt_path,
        )

    fixed_z = sample_latent(64, config.generator.latent_dim, torch.Generator().manual_seed(config.seed))
    batches = sample_batches(data, config.batch_size, seed=config.seed + step)
    started = time.monotonic() - elapsed
    budget = float("inf") if config.minutes is None else config.minutes * 60
    bar = tqdm(total=config.steps, initial=step, desc="gan", unit="step")
    first_step = step
    while step < config.steps and elapsed < budget:
        real = next(batches)
        fake = g(sample_latent(config.batch_size, config.generator.latent_dim))
        d_loss = discriminator_loss(d(real), d(fake.detach()))
        d_optim.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optim.step()

        g_loss = generator_loss(d(fake))
        g_optim.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optim.step()
        update_ema(g_ema, g, ema_decay(step, config.ema_decay))

        step += 1
        elapsed = time.monotonic() - started
        bar.update(1)
        bar.set_postfix(d=f"{d_loss.item():.3f}", g=f"{g_loss.item():.3f}", min=f"{elapsed / 60:.1f}")
        if step % config.sample_every == 0:
            with torch.no_grad():
                save_grid(g_ema(fixed_z), run_dir / "samples" / f"{step:07d}.png")
        if step % config.checkpoint_every == 0:
            checkpoint()
    if step > first_step:
        checkpoint()
        with torch.no_grad():
            save_grid(g_ema(fixed_z), run_dir / "samples" / f"{step:07d}.png")
    bar.close()
    return ckpt_path
