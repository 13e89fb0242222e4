"""Run codecs over images and record, per image and setting: bytes, bits per pixel, distortion, face identity
(bench/identity.py) and time.

Records go to STORE/records/CODEC.jsonl, one JSON line per (setting, image), so an interrupted run resumes
where it stopped and presets that share a store share the settings they have in common (a later line for the
same setting and image replaces an earlier one). The first batch's first few decodes are kept (STORE/decoded/)
for the figure grids.

Records written before a figure was added lack it. Such a record counts as not done when measuring it again is
cheap (encode and decode under REMEASURE_S an image, as recorded: the Pillow codecs, the autoencoder, GE with a
learned start), so that running the preset again fills the figure in; records of searches and solves (CSGM,
Lasso-DCT, GE with the 500 x 2 search, the generator floor: hours for a full sweep on a CPU) are kept, and their
summaries show the figure as missing until those records are deleted and measured again.
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
from bench.identity import face_identity
from bench.quality import ms_ssim, ms_ssim_supported, ssim
from gecodec.errors import GecError
from gecodec.fileio import write_bytes_atomic
from gecodec.imageio import tensor_to_pixels
from gecodec.metrics import mse, psnr_8bit
from gecodec.search import SearchOptions, pixel_fit


# Figures that records written before them lack, and the time an image (encode + decode, as recorded) under which
# such a record is measured again (see the module docstring). In bench/results/store the cheap settings took at
# most 0.07 s an image and the searches and solves at least 0.86 s; the margin below allows for a busy CPU. A store
# measured on a GPU and rerun on a CPU would pass some searches for cheap.
NEWER_FIGURES = ("identity_distance", "same_person")
REMEASURE_S = 0.5


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
    """Per-image MSE ([-1, 1] convention), PSNR and SSIM on 8-bit RGB, MS-SSIM where the size allows it, and
    face identity (identity_distance, same_person)."""
    figures: dict[str, list[float | None]] = {
        "mse": mse(decoded, originals).tolist(),
        "psnr": psnr_8bit(decoded, originals).tolist(),
        "ssim": ssim(decoded, originals).tolist(),
    }
    h, w = originals.shape[-2:]
    figures["ms_ssim"] = ms_ssim(decoded, originals).tolist() if ms_ssim_supported(h, w) else [None] * len(originals)
    figures.update(face_identity().measure(tensor_to_pixels(decoded), tensor_to_pixels(originals)))
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

    def has(self, setting: Setting, name: str) -> bool:
        """Whether this image has a record of this setting to keep: one with every figure, or one that lacks some
        but was too slow to measure again for them."""
        record = self.done.get((setting_key(setting), name))
        if record is None:
            return False
        seconds = (record["encode_s"] or 0.0) + (record["decode_s"] or 0.0)
        return all(figure in record for figure in NEWER_FIGURES) or seconds >= REMEASURE_S

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
    """Encode and decode every image at every setting not already recorded (Records.has); returns the codec's
    records."""
    records = Records(store / "records" / f"{codec.name}.jsonl")
    settings = settings if settings is not None else codec.settings()
    pixels = images.shape[-1] * images.shape[-2]
    todo = [(s, start) for s in settings for start in range(0, len(images), batch_size)
            if not all(records.has(s, n) for n in names[start : start + batch_size])]
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
            if not all(records.has(setting, n) for n in names[start : start + batch_size])]
    for setting, generator, start in tqdm(todo, desc="floor", unit="batch", disable=not todo or None):
        batch, batch_names = images[start : start + batch_size], names[start : start + batch_size]
        seeds = list(range(start, start + len(batch)))
        seconds, decoded = timed(device, pixel_fit, generator.to(device), batch, seeds, options)
        records.add(reference_records(setting, batch_names, distortion(decoded, batch), seconds, device_name))
        if start == 0:
            save_decodes(store / "decoded" / "floor" / f"{setting_key(setting)}.npy", decoded[:keep])
    return records.only(settings, names)
