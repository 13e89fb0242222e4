"""The latent search: z* = argmin_z mean((measure(G(z)) - target)^2) + lam * mean(z^2), batched over images and restarts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gecodec.models import Generator
from gecodec.models.solver import LatentSolver
from gecodec.options import SearchOptions

Measure = Callable[[torch.Tensor], torch.Tensor]  # images (N, 3, H, W) -> measurements (N, m)
Progress = Callable[[int], None]  # called after each iteration with the number of images it advanced


@dataclass
class SearchResult:
    z: torch.Tensor  # (B, latent_dim): the best restart per image
    images: torch.Tensor  # (B, 3, H, W): G(z)
    objective: torch.Tensor  # (B,): the objective at z


def derived_seed(seed: int, stream: int) -> int:
    """An independent 64-bit seed for one use (stream) of a file's seed."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0])


STREAM_RESTARTS, STREAM_MATRIX = 0, 1


def initial_latents(seeds: list[int], restarts: int, generator: Generator) -> torch.Tensor:
    """Starting points (B * restarts, latent_dim), drawn on the CPU from each file's seed, so they are the
    same on every device and whatever else is in the batch."""
    config = generator.config
    starts = []
    for seed in seeds:
        rng = torch.Generator().manual_seed(derived_seed(seed, STREAM_RESTARTS))
        if config.latent_prior == "uniform":
            starts.append(torch.rand(restarts, config.latent_dim, generator=rng) * 2 - 1)
        else:
            starts.append(torch.randn(restarts, config.latent_dim, generator=rng))
    return torch.cat(starts)


class AdamMoments:
    """Adam (Kingma and Ba; betas 0.9, 0.999, eps 1e-8) for one tensor, in the same arithmetic as
    torch.optim.Adam's single-tensor path, so decoded pixels are the same. torch.optim is not used because its
    first step imports torch._dynamo, which adds 1.5 s to the start of every decode."""

    BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, param: torch.Tensor) -> None:
        self.first = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.second = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.count = 0

    @torch.no_grad()
    def step(self, param: torch.Tensor, lr: float) -> None:
        grad = param.grad
        self.count += 1
        self.first.lerp_(grad, 1 - self.BETA1)
        self.second.mul_(self.BETA2).addcmul_(grad, grad, value=1 - self.BETA2)
        step = float(self.count)
        denominator = (self.second.sqrt() / (1 - self.BETA2**step) ** 0.5).add_(self.EPS)
        param.addcdiv_(self.first, denominator, value=-(lr / (1 - self.BETA1**step)))


def objective(measured: torch.Tensor, target: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-row objective: mean squared measurement error plus lam times the mean of z^2."""
    return (measured - target).pow(2).mean(1) + lam * z.pow(2).mean(1)


def latent_search(
    generator: Generator,
    measure: Measure,
    targets: torch.Tensor,
    seeds: list[int],
    options: SearchOptions = SearchOptions(),
    progress: Progress | None = None,
    solver: LatentSolver | None = None,
) -> SearchResult:
    """Fit z to each target row; all images and restarts run as one batch and the best restart wins.

    Each restart starts from the file's seeded prior draw, except that a solver with a learned start gives the
    first restart its z0; a solver then takes its K learned steps, and Adam runs ``options.iters`` iterations.
    Adam is element-wise, so optimising the sum of the per-row objectives optimises each row on its own.
    """
    batch, restarts = targets.shape[0], options.restarts
    device = targets.device
    z = initial_latents(seeds, restarts, generator).to(device)
    repeated = targets.repeat_interleave(restarts, dim=0)
    if solver is not None:
        if solver.initializer is not None:
            z.view(batch, restarts, -1)[:, 0] = solver.start(targets)
        z = solver.descend(lambda latents: objective(measure(generator(latents)), repeated, latents, options.lam), z)
        if progress is not None:
            progress(batch * solver.config.steps)
    z.requires_grad_(True)
    moments = AdamMoments(z)
    for _ in range(options.iters):
        z.grad = None
        loss = objective(measure(generator(z)), repeated, z, options.lam).sum()
        loss.backward()
        moments.step(z, options.lr)
        if progress is not None:
            progress(batch)
    with torch.no_grad():
        images = generator(z)
        final = objective(measure(images), repeated, z, options.lam).view(batch, restarts)
        best = final.argmin(1)
        pick = torch.arange(batch, device=device) * restarts + best
        return SearchResult(z=z.detach()[pick], images=images[pick], objective=final[torch.arange(batch, device=device), best])


def pixel_fit(generator: Generator, images: torch.Tensor, seeds: list[int], options: SearchOptions = SearchOptions()
              ) -> torch.Tensor:
    """The generator's floor for (B, 3, S, S) images: G(z*) for z* = argmin ||G(z) - x||^2 + lam ||z||^2.

    The same search with the identity as the measurement; no measurement scheme can beat it with this G.
    """
    device = next(generator.parameters()).device
    result = latent_search(generator, lambda x: x.flatten(1), images.flatten(1).to(device), seeds, options)
    return result.images.float().cpu().clamp(-1, 1)
