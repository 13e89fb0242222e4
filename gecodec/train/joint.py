"""Joint training of G, EN and the decoder's solver through the decoder's own search (Deep Compressed Sensing).

Each step encodes a batch, adds the file's quantization noise, decodes it with the solver's start and K
unrolled gradient steps on ||EN(G(z)) - m_hat||^2 + lam ||z||^2, and trains everything on:
- reconstruction: ||G(z_K) - x||^2, on real images and on a share of images G drew itself;
- measurement consistency (DCS's RIP-style term): distances between measurements track distances between
  images, for pairs of faces and for each face and its reconstruction, so the search's objective means pixels;
- a prior term: the decoded latents' per-dimension mean and variance, or their whole distribution (MMD), match
  N(0, I)'s, so G(z ~ N(0, I)) draws faces like the ones it decodes;
- optionally a non-saturating adversarial term on reconstructions and prior samples, for sharpness.

G runs in eval mode throughout: its batch norms act as fixed per-channel affine maps, so each image's decode is
independent of the rest of its batch, in training as in the codec.

Files in RUN_DIR: checkpoint.pt (model, EMA model, optimizers, step, config), log.jsonl, samples/STEP.png
(rows 1-2: the first 16 training faces; rows 3-4: the EMA model's decodes of them, without quantization;
rows 5-8: the EMA G's samples from the prior).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gecodec.bundle import Bundle, load_model
from gecodec.entropy import QUALITIES, quality_steps
from gecodec.errors import OptionError, TrainingError
from gecodec.models import ConvDiscriminatorConfig, Encoder, EncoderConfig, Generator, GeneratorConfig
from gecodec.models.solver import LatentSolver, SolverConfig
from gecodec.quantize import check_bits
from gecodec.search import SearchOptions, objective
from gecodec.train.augment import AUGMENTATIONS, augment, check_augment
from gecodec.train.checkpoint import ema_decay, save_checkpoint, start_or_resume, update_ema
from gecodec.train.data import mixed_batches, to_float
from gecodec.train.distributed import Runtime, describe_hardware
from gecodec.train.export import export_bundle
from gecodec.train.gan import append_log, out_of_time, run_seed, sample_latent
from gecodec.train.grid import save_grid
from gecodec.train.objectives import NonSaturatingObjective


PRIORS = ("moments", "mmd")


@dataclass
class JointTrainConfig:
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(
        latent_prior="normal", channels=256, arch="dcgan"))
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    init_from: str | None = None  # a bundle (name, id or path) whose G, EN (and solver, if it fits) start the run
    bits: int = 8  # the quantization noise of this bit depth is added to the measurements
    # Or, when set, the noise of entropy-coded files at a quality drawn per image from this range (inclusive).
    qualities: tuple[int, int] | None = None
    batch_size: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    generated_fraction: float = 0.25  # share of each batch drawn from G (so EN measures G's faces too)
    photo_share: float = 0.0  # share of each batch's real faces drawn from the photos (train_joint's second source)
    augment: dict[str, float] = field(default_factory=dict)  # kind -> probability (gecodec.train.augment)
    consistency_weight: float = 1.0
    prior_weight: float = 0.1
    prior: str = "moments"  # moments: match the decoded latents' mean and variance; mmd: their whole distribution
    adversarial_weight: float = 0.0  # 0: no discriminator
    ema_decay: float = 0.999
    steps: int = 100_000
    minutes: float | None = None
    sample_every: int = 250
    checkpoint_every: int = 100
    log_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        check_bits(self.bits)
        g, en, solver = self.generator, self.encoder, self.solver
        if en.image_size != g.image_size:
            raise OptionError(f"the encoder's image size {en.image_size} differs from G's {g.image_size}")
        if (solver.m, solver.latent_dim) != (en.m, g.latent_dim):
            raise OptionError("the solver's m and latent size must be the encoder's m and G's latent size")
        if g.latent_prior != "normal":
            raise OptionError("joint training matches the decoded latents to N(0, I): use a normal latent prior")
        if self.batch_size < 2 or self.lr <= 0 or not 0 <= self.generated_fraction < 1:
            raise OptionError("batch size must be at least 2, the learning rate positive, the generated share in [0, 1)")
        if self.qualities is not None and not 0 <= self.qualities[0] <= self.qualities[1] < QUALITIES:
            raise OptionError(f"qualities must be a range within 0 .. {QUALITIES - 1}, got {self.qualities}")
        if not 0 <= self.photo_share <= 1:
            raise OptionError(f"the photos' share of a batch must be in [0, 1], got {self.photo_share}")
        check_augment(self.augment)
        self.augment = {kind: float(self.augment.get(kind, 0.0)) for kind in AUGMENTATIONS}  # all kinds compared on resume
        if self.prior not in PRIORS:
            raise OptionError(f"unknown prior term {self.prior!r} (choose from {', '.join(PRIORS)})")
        if min(self.consistency_weight, self.prior_weight, self.adversarial_weight) < 0:
            raise OptionError("loss weights must be non-negative")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> JointTrainConfig:
        values = dict(values)
        values["generator"] = GeneratorConfig(**values["generator"])
        values["encoder"] = EncoderConfig(**values["encoder"])
        values["solver"] = SolverConfig(**values["solver"])
        values["betas"] = tuple(values["betas"])
        if values.get("qualities") is not None:
            values["qualities"] = tuple(values["qualities"])
        return cls(**values)


class JointModel(nn.Module):
    """G, EN and the solver as one module, so that one optimizer, one EMA and one state dict cover them."""

    def __init__(self, config: JointTrainConfig) -> None:
        super().__init__()
        self.generator = Generator(config.generator)
        self.encoder = Encoder(config.encoder)
        self.solver = LatentSolver(config.solver)

    def train(self, mode: bool = True) -> JointModel:
        super().train(mode)
        self.generator.eval()  # batch norm as a fixed affine map: see the module docstring
        return self

    def decode(self, m_hat: torch.Tensor, z_start: torch.Tensor, lam: float, create_graph: bool = False) -> torch.Tensor:
        """The solver's part of the decoder: z0 (learned, or the given prior draw), then the K steps."""
        z0 = self.solver.start(m_hat) if self.solver.initializer is not None else z_start
        steps = lambda z: objective(self.encoder(self.generator(z)), m_hat, z, lam)  # noqa: E731
        return self.solver.descend(steps, z0, create_graph=create_graph)

    def forward(self, x: torch.Tensor, z_start: torch.Tensor, noise: torch.Tensor, lam: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training decode: (m, z_K, G(z_K), EN(G(z_K))) for images x with quantization noise added to m."""
        m = self.encoder(x)
        z = self.decode(m + noise, z_start, lam, create_graph=True)
        x_rec = self.generator(z)
        return m, z, x_rec, self.encoder(x_rec)


def start_model(config: JointTrainConfig) -> tuple[JointModel, str | None]:
    """A fresh model, with G and EN (and the solver, when the bundle has one of this run's config) copied from
    ``config.init_from`` when given; returns it and that bundle's id."""
    model = JointModel(config)
    if config.init_from is None:
        return model, None
    bundle: Bundle = load_model(config.init_from)
    if bundle.generator.config != config.generator or bundle.encoder.config != config.encoder:
        raise OptionError(f"{config.init_from}: its G and EN configs differ from this run's")
    model.generator.load_state_dict(bundle.generator.state_dict())
    model.encoder.load_state_dict(bundle.encoder.state_dict())
    if bundle.solver is not None and bundle.solver.config == config.solver:
        model.solver.load_state_dict(bundle.solver.state_dict())
    return model, bundle.model_hex


class RunningRange:
    """Per-dimension range and spread of EN's outputs, tracked over training batches: the quantizer's step
    comes from them (the range for fixed-length files, the spread for entropy-coded ones)."""

    def __init__(self, m: int, momentum: float = 0.99) -> None:
        self.lo, self.hi, self.momentum, self.started = torch.zeros(m), torch.ones(m), momentum, False
        self.scale = torch.ones(m)

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().float().cpu()
        lo, hi, scale = values.amin(0), values.amax(0), values.std(0)
        if not self.started:
            self.lo, self.hi, self.scale, self.started = lo, hi, scale, True
        else:
            for mine, batch in ((self.lo, lo), (self.hi, hi), (self.scale, scale)):
                mine.lerp_(batch, 1 - self.momentum)

    def state_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "scale": self.scale, "started": self.started}

    def load_state_dict(self, state: dict) -> None:
        self.lo, self.hi, self.started = state["lo"], state["hi"], bool(state["started"])
        self.scale = state.get("scale", (self.hi - self.lo) / 6)  # runs from before it was tracked


def quantization_noise(shape: torch.Size, value_range: RunningRange, config: JointTrainConfig, rng: torch.Generator
                       ) -> torch.Tensor:
    """Uniform noise of one quantizer step per dimension: what rounding does, but differentiable. The step is
    that of ``config.bits`` fixed-length values, or of entropy-coded files at a quality drawn per image."""
    if config.qualities is None:
        step = (value_range.hi - value_range.lo) / ((1 << config.bits) - 1)
    else:
        low, high = config.qualities
        quality = torch.randint(low, high + 1, (shape[0], 1), generator=rng)
        step = quality_steps()[quality] * value_range.scale
    return (torch.rand(shape, generator=rng) - 0.5) * step


def consistency_loss(x: torch.Tensor, x_other: torch.Tensor, m: torch.Tensor, m_other: torch.Tensor) -> torch.Tensor:
    """DCS's restricted-isometry term: the RMS distance of measurements should equal the RMS distance of images."""
    measured = (m - m_other).pow(2).mean(1).add(1e-8).sqrt()
    actual = (x - x_other).pow(2).flatten(1).mean(1).add(1e-8).sqrt()
    return (measured - actual).pow(2).mean()


def moments_loss(z: torch.Tensor) -> torch.Tensor:
    """How far the batch's per-dimension mean and variance are from N(0, I)'s."""
    return z.mean(0).pow(2).mean() + (z.var(0) - 1).pow(2).mean()


def mmd_loss(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Maximum mean discrepancy between the decoded latents and prior draws (WAE-MMD, Tolstikhin et al. 2018),
    with inverse multiquadratic kernels at several scales: small only when the whole distribution is N(0, I)'s,
    which is what lets G(z ~ N(0, I)) draw faces."""
    n, d = z.shape
    both = torch.cat([z, prior])
    distances = torch.cdist(both, both).pow(2)
    kernel = sum(scale * 2 * d / (scale * 2 * d + distances) for scale in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0))
    off_diagonal = 1 - torch.eye(n, device=z.device)
    within_z = (kernel[:n, :n] * off_diagonal).sum() / (n * (n - 1))
    within_prior = (kernel[n:, n:] * off_diagonal).sum() / (n * (n - 1))
    return within_z + within_prior - 2 * kernel[:n, n:].mean()


def joint_losses(model: nn.Module, x: torch.Tensor, z_start: torch.Tensor, config: JointTrainConfig,
                 value_range: RunningRange, rng: torch.Generator, lam: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The loss of one batch (without the adversarial term), the reconstructions, and the figures to log."""
    noise = quantization_noise((len(x), config.encoder.m), value_range, config, rng).to(x.device)
    m, z, x_rec, m_rec = model(x, z_start, noise, lam)
    value_range.update(m)
    recon = F.mse_loss(x_rec.float(), x)
    consistency = consistency_loss(x, x.roll(1, 0), m, m.roll(1, 0)) + consistency_loss(x, x_rec, m, m_rec)
    if config.prior == "moments":
        prior = moments_loss(z.float())
    else:  # fresh draws: z_start's also made this batch's generated faces, whose latents z should recover
        prior = mmd_loss(z.float(), torch.randn(z.shape, generator=rng).to(z.device))
    loss = recon + config.consistency_weight * consistency + config.prior_weight * prior
    step_sizes = model.module.solver.log_step_sizes if hasattr(model, "module") else model.solver.log_step_sizes
    logs = {"mse": recon.item(), "psnr": 10 * math.log10(4 / max(recon.item(), 1e-10)),
            "consistency": consistency.item(), "prior": prior.item(),
            "step_size": step_sizes.exp().mean().item() if len(step_sizes) else 0.0}
    return loss, x_rec, logs


def train_joint(data: torch.Tensor, run_dir: str | Path, config: JointTrainConfig, *, photos: torch.Tensor | None = None,
                resume: bool = False, runtime: Runtime | None = None) -> Path:
    """Train G, EN and the solver on uint8 images (N, 3, H, W), and with ``config.photo_share`` of each batch's
    real faces from ``photos`` (face crops framed from photos). Returns the checkpoint path."""
    runtime = runtime or Runtime(torch.device("cpu"))
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if (photos is not None) != (config.photo_share > 0):
        raise OptionError("photos and a photo share go together: give both or neither")
    sources = {"faces": len(data), "photos": 0 if photos is None else len(photos)}
    state = start_or_resume(ckpt_path, resume, config.to_dict())
    if state is not None and state.get("sources", sources) != sources:
        raise TrainingError(f"{ckpt_path}: --resume with another data mix ({state['sources']} in the checkpoint, "
                            f"{sources} now)")
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model, init_id = start_model(config) if state is None else (JointModel(config), state.get("init_id"))
    adversary = NonSaturatingObjective(ConvDiscriminatorConfig(config.generator.image_size)) \
        if config.adversarial_weight > 0 else None
    ema = copy.deepcopy(model).requires_grad_(False)
    value_range = RunningRange(config.encoder.m)
    step, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"])
        value_range.load_state_dict(state["range"])
        if adversary is not None:
            adversary.discriminator.load_state_dict(state["d"])
        step, elapsed = state["step"], state["elapsed"]
    device = runtime.device
    model, ema = model.to(device).train(), ema.to(device).eval()
    optim = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    d_optim = None
    if adversary is not None:
        adversary.discriminator.to(device)
        d_optim = torch.optim.Adam(adversary.discriminator.parameters(), lr=config.lr, betas=config.betas)
    if state is not None and "optim" in state:  # a half checkpoint (checkpoint.half_checkpoint) has none
        optim.load_state_dict(state["optim"])
        if d_optim is not None:
            d_optim.load_state_dict(state["d_optim"])
    trained = runtime.wrap(model)
    d_train = runtime.wrap(adversary.discriminator) if adversary is not None else None
    hardware = describe_hardware(device) + (f", {runtime.world_size} processes" if runtime.world_size > 1 else "")
    lam = SearchOptions().lam

    def checkpoint() -> None:
        save_checkpoint(
            {"model": model.state_dict(), "ema": ema.state_dict(), "optim": optim.state_dict(),
             "range": value_range.state_dict(), "step": step, "elapsed": elapsed, "config": config.to_dict(),
             "init_id": init_id, "hardware": hardware, "sources": sources,
             **({"d": adversary.discriminator.state_dict(), "d_optim": d_optim.state_dict()} if adversary else {})},
            ckpt_path,
        )

    def samples() -> None:
        x_fixed = fixed_faces.to(device)
        decoded = ema.decode(ema.encoder(x_fixed), fixed_z[: len(x_fixed)], lam, create_graph=False)
        with torch.no_grad():
            rows = torch.cat([x_fixed, ema.generator(decoded), ema.generator(fixed_z)])
        save_grid(rows.float().clamp(-1, 1), run_dir / "samples" / f"{step:07d}.png")

    sample_rng = torch.Generator().manual_seed(config.seed)
    fixed_z = sample_latent(32, config.generator, sample_rng).to(device)
    fixed_faces = to_float(data[:16] if photos is None else torch.cat([data[:8], photos[:8]]))
    stream = run_seed(config.seed, runtime.rank, step)
    n_generated = round(config.batch_size * config.generated_fraction)
    photo_rows = round((config.batch_size - n_generated) * config.photo_share)
    batches = mixed_batches(data.to(device), None if photos is None else photos.to(device), config.batch_size,
                            photo_rows, seed=stream)
    rng = torch.Generator().manual_seed(stream + 1)
    augment_rng = torch.Generator().manual_seed(stream + 2)
    started = time.monotonic() - elapsed
    budget = float("inf") if config.minutes is None else config.minutes * 60
    bar = tqdm(total=config.steps, initial=step, desc="joint", unit="step", disable=not runtime.is_main)
    first_step = step
    while step < config.steps and not out_of_time(elapsed, budget, runtime):
        x = next(batches)
        if any(config.augment.values()):  # the real faces only: G's are overwritten below
            x[n_generated:] = augment(x[n_generated:], config.augment, augment_rng)
        z_prior = sample_latent(config.batch_size, config.generator, rng).to(device)
        if n_generated:
            with torch.no_grad():
                x[:n_generated] = model.generator(z_prior[:n_generated]).clamp(-1, 1)
        with runtime.autocast():
            loss, x_rec, logs = joint_losses(trained, x, z_prior, config, value_range, rng, lam)
        if adversary is not None:
            fakes = torch.cat([x_rec, model.generator(z_prior[n_generated:])])
            with runtime.autocast():
                d_loss, d_logs = adversary.d_loss(d_train, x, fakes.detach())
            d_optim.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optim.step()
            adversary.discriminator.requires_grad_(False)
            with runtime.autocast():
                g_loss, g_logs = adversary.g_loss(d_train, fakes)
            adversary.discriminator.requires_grad_(True)
            loss = loss + config.adversarial_weight * g_loss
            logs |= d_logs | g_logs
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingError(f"the loss is {loss.item()} at step {step}: training stopped; "
                                f"{ckpt_path} holds the last good checkpoint (lower --lr, then --resume)")
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        update_ema(ema, model, ema_decay(step, config.ema_decay))

        step += 1
        elapsed = time.monotonic() - started
        if not runtime.is_main:
            continue
        bar.update(1)
        bar.set_postfix({"psnr": f"{logs['psnr']:.2f}", "min": f"{elapsed / 60:.1f}"})
        if step % config.log_every == 0:
            append_log(run_dir / "log.jsonl", {"step": step, "minutes": round(elapsed / 60, 2), **logs})
        if step % config.sample_every == 0:
            samples()
        if step % config.checkpoint_every == 0:
            checkpoint()
    if step > first_step and runtime.is_main:
        samples()
        checkpoint()
    bar.close()
    return ckpt_path


def export_joint(state: dict, out: str | Path, name: str, train: torch.Tensor, data: str, decode: SearchOptions,
                 val: torch.Tensor | None = None, made_by: str = "gec train joint",
                 stages: list[dict] | None = None) -> Bundle:
    """Export a joint run's EMA model (G, EN, solver) as a bundle whose decode schedule is ``decode``.

    ``stages``: when the run continued earlier runs, each run's summary (minutes, steps, noise) for the card;
    the card's training minutes are then theirs together."""
    config = JointTrainConfig.from_dict(state["config"])
    model = JointModel(config)
    model.load_state_dict(state["ema"])
    model.eval().requires_grad_(False)
    minutes = round(state["elapsed"] / 60, 1)
    steps = state["step"]
    if stages:  # G's training is every stage's
        minutes, steps = round(sum(stage["minutes"] for stage in stages), 1), sum(stage["steps"] for stage in stages)
    card = {
        "data": f"{len(train)} images from {data}",
        "image_size": config.generator.image_size,
        "generator": {"config": config.generator.to_dict(), "loss": "joint", "steps": steps,
                      "batch_size": config.batch_size, "minutes": minutes, "hardware": state.get("hardware"),
                      "ema": "exported weights are the exponential moving average of G, EN and the solver"},
        "encoder": {"kind": "ge1", "config": config.encoder.to_dict(), "trained": "jointly with G"},
        "joint": {"config": config.to_dict(), "init_from_id": state.get("init_id"), "steps": state["step"],
                  "minutes": round(state["elapsed"] / 60, 1)},  # this run; stages lists the earlier ones
        "training_minutes": minutes,
        **({"stages": stages} if stages else {}),
        "made_by": made_by,
    }
    return export_bundle(out, name, model.generator, model.encoder, train, card, val=val, solver=model.solver,
                         decode=decode, entropy=True)
