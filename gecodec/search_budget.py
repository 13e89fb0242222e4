"""How much search a file may ask of its decoder: a bound on the floating-point work of one face's latent search.

A file's hints (iterations, restarts) and the schedule of the model it names decide how long its search runs,
so a file can ask for minutes within the fields' own limits. The decoder counts one face's search as
(solver steps + iterations) x restarts passes of G and the measurement, forward and backward, plus, for a cs
file, drawing its matrix, and refuses a file whose search would cost more than BUDGET_FACTOR times the model's
own schedule or MAX_SEARCH_FLOPS, whichever is smaller. Settings the caller gives explicitly (both iterations
and restarts) are the caller's choice and are not bounded.
"""

from __future__ import annotations

import torch
from torch import nn

from gecodec.errors import DecodeError
from gecodec.options import SearchOptions

MAX_SEARCH_FLOPS = 60e9  # a face's search: about 2 s on 2 CPU cores at batch 1 (the default schedule: 6.5e9)
BUDGET_FACTOR = 8  # a file may ask for this many times the model's own schedule
# Drawing one normal value of a cs matrix takes as long as about this many FLOPs of the search (measured: 1.0 s
# for the 151 M values of a 12,288-value matrix at 64x64).
DRAW_FLOPS = 150


def forward_macs(module: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``example`` through module's convolutions and linear layers
    (the rest of a conv net is a few percent of its work)."""
    total = 0

    def count(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features
        elif isinstance(layer, nn.ConvTranspose2d):  # each input value is spread over a kernel of outputs
            total += inputs[0].numel() * layer.out_channels // layer.groups * layer.weight[0, 0].numel()
        else:
            total += output.numel() * layer.weight[0].numel()

    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    handles = [layer.register_forward_hook(count) for layer in layers]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for handle in handles:
            handle.remove()
    return total


def pass_flops(macs: int) -> int:
    """FLOPs of a forward and a backward pass (the backward costs about twice the forward) of so many MACs."""
    return 6 * macs


def gaussian_flops(count: int, pixels: int) -> int:
    """A cs matrix's share of one search pass (count x pixels, forward and backward)."""
    return pass_flops(count * pixels)


def search_flops(options: SearchOptions, solver_steps: int, per_pass: int, setup: int = 0) -> float:
    """FLOPs of one face's search: each solver step and Adam iteration is a pass per restart."""
    return float(solver_steps + options.iters) * options.restarts * per_pass + setup


def check_search_budget(asked: float, own: float, what: str) -> None:
    """Refuse a search of ``asked`` FLOPs when it exceeds the budget set by the model's own schedule (``own``)."""
    limit = min(BUDGET_FACTOR * own, MAX_SEARCH_FLOPS)
    if asked > limit:
        raise DecodeError(f"{what} asks for a search of {asked / 1e9:.1f} GFLOP a face, over the limit of "
                          f"{limit / 1e9:.1f} GFLOP; give --iters and --restarts to decode it anyway")
