"""GAN training for the generator G: BEGAN as in its paper (the default), or the non-saturating loss with a
cheap conv critic. Resumable, on CPU or CUDA (bfloat16 autocast), on several GPUs under torchrun.

Files in RUN_DIR: checkpoint.pt (one dict: g, d, g_ema, optimizers, step, config), log.jsonl (losses,
BEGAN's k_t and convergence measure M), samples/STEP.png (the EMA generator on fixed latents).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from gecodec.errors import OptionError
from gecodec.models import ConvDiscriminatorConfig, DiscriminatorConfig, Generator, GeneratorConfig
from gecodec.train.checkpoint import ema_decay, save_checkpoint, start_or_resume, update_ema
from gecodec.train.data import sample_batches
from gecodec.train.distributed import Runtime, describe_hardware
from gecodec.train.grid import save_grid
from gecodec.train.objectives import BeganObjective, NonSaturatingObjective

LOSSES = ("began", "nonsaturating")


@dataclass
class GanTrainConfig:
    """The defaults are BEGAN's reference setting: batch 16, Adam (0.5, 0.999), lr 8e-5 halved down to a
    floor of 2e-5, gamma 0.5, lambda_k 0.001, z uniform in [-1, 1]."""

    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(latent_prior="uniform"))
    loss: str = "began"  # or "nonsaturating"
    # None: the loss's own discriminator at G's size (BEGAN: embedding = G's latent size, n = G's width).
    discriminator: DiscriminatorConfig | ConvDiscriminatorConfig | None = None
    batch_size: int = 16
    lr: float = 8e-5
    lr_floor: float = 2e-5
    lr_halve_every: int | None = 50_000  # steps; None keeps the learning rate constant
    betas: tuple[float, float] = (0.5, 0.999)
    gamma: float = 0.5  # BEGAN's diversity ratio E[L(G(z))] / E[L(x)]
    lambda_k: float = 0.001  # BEGAN's learning rate for k_t
    ema_decay: float = 0.999
    steps: int = 100_000
    minutes: float | None = None  # stop early at this wall-clock budget (summed over resumed runs)
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise OptionError(f"unknown GAN loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        wanted = DiscriminatorConfig if self.loss == "began" else ConvDiscriminatorConfig
        if self.discriminator is None:
            g = self.generator
            self.discriminator = (DiscriminatorConfig(g.image_size, g.latent_dim, g.channels) if self.loss == "began"
                                  else ConvDiscriminatorConfig(g.image_size))
        if not isinstance(self.discriminator, wanted):
            raise OptionError(f"the {self.loss} loss needs a {wanted.__name__}")
        if self.discriminator.image_size != self.generator.image_size:
            raise OptionError("the discriminator's image size differs from the generator's")
        if self.batch_size < 1 or self.lr <= 0:
            raise OptionError("batch size and learning rate must be positive")

    def lr_at(self, step: int) -> float:
        if not self.lr_halve_every:
            return self.lr
        return max(self.lr * 0.5 ** (step // self.lr_halve_every), min(self.lr, self.lr_floor))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GanTrainConfig:
        """The config a checkpoint stored (as a plain dict) back as objects."""
        values = dict(values)
        values["generator"] = GeneratorConfig(**values["generator"])
        disc = DiscriminatorConfig if values.get("loss", "began") == "began" else ConvDiscriminatorConfig
        values["discriminator"] = disc(**values["discriminator"])
        values["betas"] = tuple(values["betas"])
        return cls(**values)


def make_objective(config: GanTrainConfig) -> BeganObjective | NonSaturatingObjective:
    if config.loss == "began":
        return BeganObjective(config.discriminator, config.gamma, config.lambda_k)
    return NonSaturatingObjective(config.discriminator)


def sample_latent(n: int, config: GeneratorConfig, rng: torch.Generator | None = None) -> torch.Tensor:
    """Latents from the prior G was trained on (the decoder's restarts start from the same prior)."""
    if config.latent_prior == "uniform":
        return torch.rand(n, config.latent_dim, generator=rng) * 2 - 1
    return torch.randn(n, config.latent_dim, generator=rng)


@torch.no_grad()
def refresh_batchnorm_stats(generator: Generator, batches: int = 16, batch_size: int = 64, seed: int = 0) -> None:
    """Recompute batch-norm running statistics for these weights (a no-op for G without batch norm).

    The EMA generator's weights are an average that was never run in training, so the statistics copied
    from the live G do not fit them; G in eval mode (as in the decoder's search) needs statistics that do.
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    generator.train()
    for _ in range(batches):
        generator(sample_latent(batch_size, generator.config, rng).to(device))
    generator.eval()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def ema_generator(gan_state: dict) -> Generator:
    """The generator a run exports: its EMA weights, with batch-norm statistics that fit them, in eval mode."""
    generator = Generator(GanTrainConfig.from_dict(gan_state["config"]).generator)
    generator.load_state_dict(gan_state["g_ema"])
    refresh_batchnorm_stats(generator)
    return generator.eval().requires_grad_(False)


def run_seed(seed: int, rank: int, step: int) -> int:
    """A distinct, reproducible random stream per (run seed, rank, step a run started from)."""
    return (seed * 1_000_003 + rank) * 1_000_003 + step


def train_gan(data: torch.Tensor, run_dir: str | Path, config: GanTrainConfig, *, resume: bool = False,
              runtime: Runtime | None = None) -> Path:
    """Train G on uint8 images (N, 3, H, W). Returns the checkpoint path.

    ``resume`` continues run_dir/checkpoint.pt (its config must match, run length aside); without it an
    existing checkpoint is an error rather than something to overwrite.
    """
    runtime = runtime or Runtime(torch.device("cpu"))
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    state = start_or_resume(ckpt_path, resume, config.to_dict())
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    g = Generator(config.generator)
    objective = make_objective(config)
    d = objective.discriminator
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    step, elapsed = 0, 0.0
    if state is not None:
        g.load_state_dict(state["g"]), d.load_state_dict(state["d"]), g_ema.load_state_dict(state["g_ema"])
        objective.load_state_dict(state.get("objective", {}))
        step, elapsed = state["step"], state["elapsed"]
    device = runtime.device
    g, d, g_ema = g.to(device), d.to(device), g_ema.to(device)
    g_optim = torch.optim.Adam(g.parameters(), lr=config.lr, betas=config.betas)
    d_optim = torch.optim.Adam(d.parameters(), lr=config.lr, betas=config.betas)
    if state is not None:
        g_optim.load_state_dict(state["g_optim"]), d_optim.load_state_dict(state["d_optim"])
    g_train, d_train = runtime.wrap(g), runtime.wrap(d)
    hardware = describe_hardware(device) + (f", {runtime.world_size} processes" if runtime.world_size > 1 else "")

    def checkpoint() -> None:
        save_checkpoint(
            {"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(),
             "d_optim": d_optim.state_dict(), "objective": objective.state_dict(), "step": step,
             "elapsed": elapsed, "config": config.to_dict(), "hardware": hardware},
            ckpt_path,
        )

    def samples() -> None:
        refresh_batchnorm_stats(g_ema)
        with torch.no_grad():
            save_grid(g_ema(fixed_z).float(), run_dir / "samples" / f"{step:07d}.png")

    fixed_z = sample_latent(64, config.generator, torch.Generator().manual_seed(config.seed)).to(device)
    stream = run_seed(config.seed, runtime.rank, step)
    batches = sample_batches(data.to(device), config.batch_size, seed=stream)
    z_rng = torch.Generator().manual_seed(stream + 1)
    started = time.monotonic() - elapsed
    budget = float("inf") if config.minutes is None else config.minutes * 60
    bar = tqdm(total=config.steps, initial=step, desc=f"gan ({config.loss})", unit="step", disable=not runtime.is_main)
    first_step = step
    while step < config.steps and not out_of_time(elapsed, budget, runtime):
        for optim in (g_optim, d_optim):
            for group in optim.param_groups:
                group["lr"] = config.lr_at(step)
        real = next(batches)
        z = sample_latent(config.batch_size, config.generator, z_rng).to(device)
        with runtime.autocast():
            fake = g_train(z)
            d_loss, logs = objective.d_loss(d_train, real, fake.detach())
        d_optim.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optim.step()

        d.requires_grad_(False)  # the G step needs gradients through D, not for it
        with runtime.autocast():
            g_loss, g_logs = objective.g_loss(d_train, fake)
        g_optim.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optim.step()
        d.requires_grad_(True)
        logs |= g_logs | objective.after_step(g_loss.float(), runtime.mean)
        update_ema(g_ema, g, ema_decay(step, config.ema_decay))

        step += 1
        elapsed = time.monotonic() - started
        if not runtime.is_main:
            continue
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()} | {"min": f"{elapsed / 60:.1f}"})
        if step % config.log_every == 0:
            append_log(run_dir / "log.jsonl", {"step": step, "minutes": round(elapsed / 60, 2),
                                               "lr": config.lr_at(step - 1), **logs})
        if step % config.sample_every == 0:
            samples()
        if step % config.checkpoint_every == 0:
            checkpoint()
    if step > first_step and runtime.is_main:
        samples()  # also refreshes g_ema's batch-norm statistics for the checkpoint
        checkpoint()
    bar.close()
    return ckpt_path


def out_of_time(elapsed: float, budget: float, runtime: Runtime) -> bool:
    """Whether the time budget is spent; all ranks agree, so none waits forever for the others."""
    spent = torch.tensor(float(elapsed >= budget), device=runtime.device)
    return bool(runtime.mean(spent) > 0)


def append_log(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}) + "\n")
