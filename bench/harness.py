"""Run codecs over images and record, per image and setting: bytes, bits per pixel, distortion and time.

Records go to STORE/records/CODEC.jsonl, one JSON line per (setting, image), so an interrupted run resumes
where it stopped and presets that share a store share the settings they have in common. The first batch's
first few decodes are kept (STORE/decoded/) for the figure grids.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench.codecs import BenchCodec, Setting
from bench.quality import ms_ssim, ms_ssim_supported, ssim
from gecodec.errors import GecError
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import tensor_to_pixels
from gecodec.metrics import mse, psnr_8bit
from gecodec.search import SearchOptions, pixel_fit


def setting_key(setting: Setting) -> str:
    """A stable file-name-safe name for a setting: model=x,m=128,bits=8."""
    return ",".join(f"{k}={v}" for k, v in setting.items())


def check_store(store: Path, size: int, search: SearchOptions, model_id: str | None = None) -> None:
    """Records are keyed by setting and image name only, so a store holds one image size and search budget (and,
    for settings that do not name their model, one model id)."""
    conditions = {"size": size, "iters": search.iters, "restarts": search.restarts}
    if model_id is not None:
        conditions["model_id"] = model_id
    path = store / "conditions.json"
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise GecError(f"{path}: unreadable ({exc})") from None
        if found != conditions:
            raise GecError(f"{store}: its records were measured with {found}, not {conditions}; use another --store")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, (json.dumps(conditions) + "\n").encode())


def timed(device: torch.device | None, work: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """(seconds, result) of one call; on a GPU, synchronised before and after so the time is the real one."""
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    result = work(*args)
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, result


def distortion(decoded: torch.Tensor, originals: torch.Tensor) -> dict[str, list[float | None]]:
    """Per-image MSE ([-1, 1] convention), PSNR and SSIM on 8-bit RGB, and MS-SSIM where the size allows it."""
    figures: dict[str, list[float | None]] = {
        "mse": mse(decoded, originals).tolist(),
        "psnr": psnr_8bit(decoded, originals).tolist(),
        "ssim": ssim(decoded, originals).tolist(),
    }
    h, w = originals.shape[-2:]
    figures["ms_ssim"] = ms_ssim(decoded, originals).tolist() if ms_ssim_supported(h, w) else [None] * len(originals)
    return figures


class Records:
    """The JSONL record file of one codec: what is done, and appending more."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[tuple[str, str], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.done[(setting_key(record["setting"]), record["image"])] = record

    def only(self, settings: list[Setting], names: list[str]) -> Records:
        """The records of these settings and images: what one run asked for, whatever else its store holds."""
        keys, wanted = {setting_key(s) for s in settings}, set(names)
        subset = copy.copy(self)
        subset.done = {k: r for k, r in self.done.items() if k[0] in keys and k[1] in wanted}
        return subset

    def add(self, records: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(record) + "\n" for record in records)
        # One unbuffered append: runs that share a store (two processes on one CPU) cannot interleave lines.
        with self.path.open("ab", buffering=0) as handle:
            handle.write(text.encode())
        for record in records:
            self.done[(setting_key(record["setting"]), record["image"])] = record


def reference_records(setting: Setting, names: list[str], figures: dict[str, list[float | None]], seconds: float,
                      device_name: str) -> list[dict]:
    """Records of a batch from a method that writes no file (the generator floor, a restoration): no bytes,
    and the batch's time shared out as decode time."""
    return [{"setting": setting, "image": name, "bytes": None, "bpp": None, **{k: v[i] for k, v in figures.items()},
             "encode_s": None, "decode_s": seconds / len(names), "device": device_name} for i, name in enumerate(names)]


def run_codec(codec: BenchCodec, images: torch.Tensor, names: list[str], store: Path, batch_size: int = 32,
              keep: int = 8, device: torch.device | None = None, device_name: str = "cpu",
              settings: list[Setting] | None = None) -> Records:
    """Encode and decode every image at every setting not already recorded; returns the codec's records."""
    records = Records(store / "records" / f"{codec.name}.jsonl")
    settings = settings if settings is not None else codec.settings()
    pixels = images.shape[-1] * images.shape[-2]
    todo = [(s, start) for s in settings for start in range(0, len(images), batch_size)
            if any((setting_key(s), n) not in records.done for n in names[start : start + batch_size])]
    for setting, start in tqdm(todo, desc=codec.name, unit="batch", disable=not todo or None):
        batch, batch_names = images[start : start + batch_size], names[start : start + batch_size]
        encode_s, files = timed(device, codec.encode, batch, setting)
        decode_s, decoded = timed(device, codec.decode, files, setting)
        figures = distortion(decoded, batch)
        records.add([
            {"setting": setting, "image": name, "bytes": len(data), "bpp": len(data) * 8 / pixels,
             **{k: v[i] for k, v in figures.items()}, "encode_s": encode_s / len(batch),
             "decode_s": decode_s / len(batch), "device": device_name}
            for i, (name, data) in enumerate(zip(batch_names, files))
        ])
        if start == 0:  # the first images' decodes, for the figure grids
            save_decodes(store / "decoded" / codec.name / f"{setting_key(setting)}.npy", decoded[:keep])
    return records.only(settings, names)


def save_decodes(path: Path, decoded: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, tensor_to_pixels(decoded))


def generator_floors(generators: dict[str, torch.nn.Module], images: torch.Tensor, names: list[str], store: Path,
                     options: SearchOptions, batch_size: int = 32, keep: int = 8, device: torch.device | None = None,
                     device_name: str = "cpu") -> Records:
    """The reference that is not a codec: per image, the best pixel-space fit min_z ||G(z) - x||^2, for the G
    of each named bundle.

    No measurement scheme can do better with that G, so it shows how much of GE's error G itself causes.
    """
    records = Records(store / "records" / "floor.jsonl")
    settings: list[Setting] = [{"reference": "generator floor", "model": model} for model in generators]
    todo = [(setting, generator, start) for setting, generator in zip(settings, generators.values())
            for start in range(0, len(images), batch_size)
            if any((setting_key(setting), n) not in records.done for n in names[start : start + batch_size])]
    for setting, generator, start in tqdm(todo, desc="floor", unit="batch", disable=not todo or None):
        batch, batch_names = images[start : start + batch_size], names[start : start + batch_size]
        seeds = list(range(start, start + len(batch)))
        seconds, decoded = timed(device, pixel_fit, generator.to(device), batch, seeds, options)
        records.add(reference_records(setting, batch_names, distortion(decoded, batch), seconds, device_name))
        if start == 0:
            save_decodes(store / "decoded" / "floor" / f"{setting_key(setting)}.npy", decoded[:keep])
    return records.only(settings, names)
