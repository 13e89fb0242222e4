"""Where a training process runs: one device, or one rank of several under torchrun (DistributedDataParallel)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gecodec.codec import resolve_device


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp: bool = False  # bfloat16 autocast (CUDA only): no loss scaling needed, unlike float16

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, samples and logs."""
        return self.rank == 0

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP for several ranks; the module itself otherwise."""
        if self.world_size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers (spectral-norm vectors) stay per rank: broadcasting them would clash with the G step.
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of a tensor over all ranks (itself on one)."""
        if self.world_size > 1:
            value = value.detach().clone()
            dist.all_reduce(value)
            value /= self.world_size
        return value


def setup_runtime(device: str | None = None, amp: bool = True) -> Runtime:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1), else use one device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        chosen = resolve_device(device)
        return Runtime(chosen, amp=amp and chosen.type == "cuda")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.set_device(local_rank)
        chosen, backend = torch.device("cuda", local_rank), "nccl"
    else:
        chosen, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Runtime(chosen, rank, world_size, amp=amp and chosen.type == "cuda")


def describe_hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"

