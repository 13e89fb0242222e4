"""Checkpoints as plain dicts of tensors and numbers, readable with torch.load(weights_only=True)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gecodec.errors import TrainingError

# Keys that only say how long or how verbosely to run: a resumed run may change them.
RUN_LENGTH_KEYS = frozenset({"steps", "minutes", "sample_every", "checkpoint_every", "log_every"})


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write to a temporary file, then rename: a crash or a full disk never spoils the previous checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError
        tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise TrainingError(f"{path}: cannot write checkpoint ({reason}); the previous one is intact") from None


def load_checkpoint(path: str | Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"{path}: no checkpoint to resume from") from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise TrainingError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise TrainingError(f"{path}: not a gecodec training checkpoint")
    return state


def check_same_config(stored: dict, current: dict, path: str | Path) -> None:
    """Refuse to resume a run with another configuration (run-length keys aside).

    Keys the checkpoint lacks, written before they existed, are not compared.
    """
    old, new = flatten(stored), flatten(current)
    differing = sorted(key for key in old.keys() & new.keys() if key not in RUN_LENGTH_KEYS and old[key] != new[key])
    if differing:
        details = "; ".join(f"{key} {old[key]} in the checkpoint, {new[key]} now" for key in differing)
        raise TrainingError(f"{path}: --resume with a different configuration ({details})")


def flatten(config: dict, prefix: str = "") -> dict:
    """{"generator": {"channels": 64}} -> {"generator.channels": 64}; tuples and lists compare alike."""
    flat: dict = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat


def start_or_resume(path: Path, resume: bool, config: dict) -> dict | None:
    """The checkpoint to continue from, or None for a fresh run; refuses to overwrite a run by accident."""
    if resume:
        state = load_checkpoint(path)
        check_same_config(state.get("config", {}), config, path)
        return state
    if path.exists():
        raise TrainingError(f"{path}: a run is already here (use --resume to continue it, or another --out)")
    return None


def ema_decay(step: int, decay: float) -> float:
    """Warm-up: average over about the last step/10 steps until that reaches 1 / (1 - decay), so short runs
    are not dominated by the random initial weights."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


OPTIMIZER_KEYS = ("optim", "g_optim", "d_optim")


def half_checkpoint(state: dict) -> dict:
    """A checkpoint small enough to commit, from which a run can go on in a later session: its weights in half
    precision and no optimizer state (a resumed run starts Adam's moments afresh)."""
    def half(value: object) -> object:
        if isinstance(value, dict):
            return {k: half(v) for k, v in value.items()}
        return value.half() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    return {key: half(value) if key in ("model", "ema", "d") else value
            for key, value in state.items() if key not in OPTIMIZER_KEYS}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write a run's checkpoint in half precision without optimizer "
                                                 "state, to commit so that a later session can resume the run.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    save_checkpoint(half_checkpoint(load_checkpoint(args.checkpoint)), args.out)


if __name__ == "__main__":
    main()
