"""The learned refinement layer's networks: a small conditional codec in the style of Balle et al.

An analysis network sees the face x and its base decode x_base. Its latent (latent x S/8 x S/8) is shifted by a
mean and scaled by a per-level gain vector (Cui et al. 2021: several rates from one model), both of which the
receiver can derive from x_base, then rounded to the integers a file codes. A synthesis network adds a residual
to x_base from those integers and x_base's features. Training also predicts each latent's Gaussian spread from
x_base, for the rate term; files code the integers with static tables instead (gecodec/learned_layer.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

SMALLEST_SPREAD = 0.11  # of a latent's Gaussian, in quantizer steps: keeps the training rate finite


@dataclass(frozen=True)
class RefinerConfig:
    levels: int = 5  # rates, one gain vector each
    latent: int = 32  # latent channels
    features: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


class Conditioning(NamedTuple):
    """What both sides derive from x_base at a level."""

    base: torch.Tensor
    features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # of x_base at S/2, S/4 and S/8 pixels
    mean: torch.Tensor
    gain: torch.Tensor
    spread: torch.Tensor  # the training prior's, in quantizer steps


def _down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class ConditionalRefiner(nn.Module):
    def __init__(self, config: RefinerConfig = RefinerConfig()) -> None:
        super().__init__()
        self.config = config
        act, features, latent = nn.GELU, config.features, config.latent
        self.base1 = nn.Sequential(_down(3, features), act())
        self.base2 = nn.Sequential(_down(features, features), act())
        self.base3 = nn.Sequential(_down(features, features), act())
        self.prior = nn.Conv2d(features, 2 * latent, 3, padding=1)
        self.analysis = nn.Sequential(_down(6, features), act(), _down(features, features), act(),
                                      _down(features, latent))
        self.up1 = nn.Sequential(_up(latent + features, features), act())
        self.up2 = nn.Sequential(_up(2 * features, features), act())
        self.up3 = nn.Sequential(_up(2 * features, features), act())
        self.out = nn.Conv2d(features + 3, 3, 3, padding=1)
        # Filled from a CPU linspace: linspace on the meta device, where a bundle's shapes are checked, would
        # import sympy (0.4 s of every decode's start).
        self.log_gains = nn.Parameter(torch.empty(config.levels, latent))
        with torch.no_grad():
            self.log_gains.copy_(torch.linspace(-1.0, 1.0, config.levels, device="cpu")[:, None])
        nn.init.zeros_(self.out.weight)  # start from x_base itself, not from x_base plus noise
        nn.init.zeros_(self.out.bias)

    def conditioning(self, base: torch.Tensor, rate: float) -> Conditioning:
        """``rate`` 0 .. levels - 1 picks the gain vector: a whole number, the one trained at that level; in
        between, log-gains interpolated linearly (Cui et al. 2021), a rate the network was not trained at. A rate
        below 0 extends the line through the first two trained rates: smaller gains, coarser integers."""
        f1 = self.base1(base)
        f2 = self.base2(f1)
        f3 = self.base3(f2)
        mean, log_spread = self.prior(f3).chunk(2, dim=1)
        gain = self.gain(rate)
        return Conditioning(base, (f1, f2, f3), mean, gain, (log_spread.exp() * gain).clamp_min(SMALLEST_SPREAD))

    def gain(self, rate: float) -> torch.Tensor:
        """The (1, latent, 1, 1) gains at ``rate`` (conditioning)."""
        lower = 0 if rate < 0 else min(int(rate), self.config.levels - 1)
        upper = min(lower + 1, self.config.levels - 1)
        fraction = rate - lower
        return ((1 - fraction) * self.log_gains[lower] + fraction * self.log_gains[upper]).exp()[None, :, None, None]

    def centred(self, x: torch.Tensor, given: Conditioning) -> torch.Tensor:
        """The analysis of (x, x_base) less the mean: the latent before a rate's gain, the same at every rate."""
        return self.analysis(torch.cat([x, given.base], 1)) - given.mean

    def latent(self, x: torch.Tensor, given: Conditioning) -> torch.Tensor:
        """The analysis of (x, x_base), in quantizer steps: rounding it gives the integers a file codes."""
        return self.centred(x, given) * given.gain

    def refine(self, integers: torch.Tensor, given: Conditioning) -> torch.Tensor:
        """The decoder: the latent's integers -> x_base plus the residual they and x_base's features draw."""
        f1, f2, f3 = given.features
        h = self.up1(torch.cat([integers / given.gain + given.mean, f3], 1))
        h = self.up2(torch.cat([h, f2], 1))
        h = self.up3(torch.cat([h, f1], 1))
        return given.base + self.out(torch.cat([h, given.base], 1))

    def forward(self, x: torch.Tensor, base: torch.Tensor, level: int, noise: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training: (the refined image, the latent's integers, each image's bits under the Gaussian prior)."""
        given = self.conditioning(base, level)
        scaled = self.latent(x, given)
        # Uniform noise stands in for rounding (Balle et al. 2017), for the rate and the synthesis alike.
        coded = scaled + torch.empty_like(scaled).uniform_(-0.5, 0.5) if noise else scaled.round()
        bits = -torch.log2(bin_probability(coded, given.spread).clamp_min(1e-9)).sum((1, 2, 3))
        return self.refine(coded, given), scaled.round(), bits


def bin_probability(value: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """P(value's unit bin) under N(0, spread), from the lower tail, where float32 keeps its precision (and a
    gradient) far from the centre."""
    normal = torch.distributions.Normal(0.0, 1.0)
    far = value.abs()
    return normal.cdf((0.5 - far) / spread) - normal.cdf((-0.5 - far) / spread)
