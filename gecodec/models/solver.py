"""The learned part of a joint model's decoder (Deep Compressed Sensing, Wu, Rosca and Lillicrap 2019):
a start z0 computed from the measurements, then K gradient steps on the search objective, each with its
own learned step size. Training unrolls exactly these steps, so the decode is what training optimised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

INITS = ("learned", "prior")
MAX_STEPS = 64  # a bundle asking for more unrolled steps than this is refused on load

RowObjective = Callable[[torch.Tensor], torch.Tensor]  # latents (N, latent_dim) -> per-row objective (N,)


@dataclass(frozen=True)
class SolverConfig:
    m: int = 128
    latent_dim: int = 128
    steps: int = 3  # K, the unrolled gradient steps
    init: str = "learned"  # learned: z0 from the measurements; prior: z0 from the file's seeded prior draw
    hidden: int = 512  # width of the initialiser's two hidden layers

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"unknown solver start {self.init!r} (choose from {', '.join(INITS)})")
        if not (isinstance(self.steps, int) and 0 <= self.steps <= MAX_STEPS):
            raise ValueError(f"solver steps must be an integer from 0 to {MAX_STEPS}, got {self.steps!r}")
        for name in ("m", "latent_dim", "hidden"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"solver {name} must be a positive integer, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class LatentSolver(nn.Module):
    """z0 = initialiser(m_hat) (or a prior draw), then z <- z - exp(log_step_k) * grad_z objective, k < K."""

    def __init__(self, config: SolverConfig) -> None:
        super().__init__()
        self.config = config
        self.initializer = None
        if config.init == "learned":
            self.initializer = nn.Sequential(
                nn.Linear(config.m, config.hidden), nn.ELU(),
                nn.Linear(config.hidden, config.hidden), nn.ELU(),
                nn.Linear(config.hidden, config.latent_dim),
            )
        # The objective is a mean over m and latent_dim values, so its gradient is small: start with large steps.
        self.log_step_sizes = nn.Parameter(torch.full((config.steps,), 3.0))

    def start(self, targets: torch.Tensor) -> torch.Tensor:
        """The learned start z0 for each row of dequantized measurements (B, m)."""
        if self.initializer is None:
            raise RuntimeError("this solver starts from the prior, not from the measurements")
        return self.initializer(targets)

    def descend(self, objective: RowObjective, z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """K gradient steps from z. With create_graph the steps stay differentiable (training unrolls them)."""
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            for log_step in self.log_step_sizes:
                (grad,) = torch.autograd.grad(objective(z).sum(), z, create_graph=create_graph)
                z = z - log_step.exp() * grad
        return z if create_graph else z.detach()
