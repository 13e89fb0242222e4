"""GAN objectives: each owns its discriminator and turns (real, fake) batches into D's and G's losses.

Losses are small functions of tensors; the objects only add the state a loss carries (BEGAN's k_t).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gecodec.models import BeganDiscriminator, ConvDiscriminator, ConvDiscriminatorConfig, DiscriminatorConfig


def l1_reconstruction(d: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """BEGAN's per-image autoencoder loss L(x) = mean |x - D(x)|."""
    return (d(x) - x).abs().flatten(1).mean(1)


class BeganObjective:
    """BEGAN (Berthelot et al. 2017): D is an autoencoder. D minimises L(x) - k_t L(G(z)), G minimises L(G(z)),
    and k_t moves by lambda_k (gamma L(x) - L(G(z))) to hold E[L(G(z))] = gamma E[L(x)].

    M_global = L(x) + |gamma L(x) - L(G(z))| falls as training converges.
    """

    def __init__(self, config: DiscriminatorConfig, gamma: float, lambda_k: float) -> None:
        self.discriminator = BeganDiscriminator(config)
        self.gamma, self.lambda_k = gamma, lambda_k
        self.k = 0.0
        self._real_loss = torch.zeros(())

    def d_loss(self, d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        losses = l1_reconstruction(d, torch.cat([real, fake]))
        real_loss, fake_loss = losses[: len(real)].mean(), losses[len(real) :].mean()
        self._real_loss = real_loss.detach()
        return real_loss - self.k * fake_loss, {"d": real_loss.item() - self.k * fake_loss.item()}

    def g_loss(self, d: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss = l1_reconstruction(d, fake).mean()
        return loss, {"g": loss.item()}

    def after_step(self, g_loss: torch.Tensor, mean: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """Update k_t from this step's losses, averaged over ranks so every rank keeps the same k_t."""
        real_loss, fake_loss = mean(torch.stack([self._real_loss, g_loss.detach()])).tolist()
        balance = self.gamma * real_loss - fake_loss
        self.k = min(max(self.k + self.lambda_k * balance, 0.0), 1.0)
        return {"k": self.k, "M": real_loss + abs(balance)}

    def state_dict(self) -> dict[str, float]:
        return {"k": self.k}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.k = float(state["k"])


class NonSaturatingObjective:
    """The non-saturating GAN loss with a spectrally normalised conv critic: far cheaper per step than BEGAN."""

    def __init__(self, config: ConvDiscriminatorConfig) -> None:
        self.discriminator = ConvDiscriminator(config)

    def d_loss(self, d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = d(torch.cat([real, fake]))  # one forward pass: DDP expects one per backward
        loss = F.softplus(-logits[: len(real)]).mean() + F.softplus(logits[len(real) :]).mean()
        return loss, {"d": loss.item()}

    def g_loss(self, d: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.softplus(-d(fake)).mean()
        return loss, {"g": loss.item()}

    def after_step(self, g_loss: torch.Tensor, mean: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, float]:
        return {}

    def load_state_dict(self, state: dict[str, float]) -> None:
        pass
