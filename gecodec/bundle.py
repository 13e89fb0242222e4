"""Model bundles: one safetensors file holding G, EN, the quantizer calibration, configs and a model card.

safetensors stores tensors and a string-to-string metadata map and never unpickles anything, so a
bundle from an untrusted source cannot run code. The bundle id is derived from a hash of its tensors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from safetensors import SafetensorError
from safetensors.torch import save_file

from gecodec.align import CropGeometry
from gecodec.catalog import (BUNDLE_SUFFIX, COARSE_LEVELS_FORMAT_VERSION, DTYPES, ENTROPY_FORMAT_VERSION, FORMAT_NAME,
                             FORMAT_VERSION, LEARNED_REFINE_FORMAT_VERSION, OUTSIDE_MODEL_ID, OUTSIDE_TRANSFORM_ID,
                             REFINE_FORMAT_VERSION, SHIPPED_DIR, SOLVER_FORMAT_VERSION, START_BASES_FORMAT_VERSION,
                             START_LAYERS_FORMAT_VERSION, TRANSFORM_FORMAT_VERSION, BundleFile, Entry,
                             available_bundles, digest, find_bundles, is_shipped, user_model_dir)
from gecodec.container import HINT_LIMITS, MAX_LAYER_LEVEL
from gecodec.entropy import QUALITIES, EntropyModel
from gecodec.errors import BundleError, GecError, ModelNotFoundError, OutputError
from gecodec.ladder import Rung, ladder_from_config
from gecodec.learned_layer import PREFIX as LEARNED_PREFIX, SUBLEVELS, LearnedRefinement, tables_shape
from gecodec.models import AutoencoderDecoder, DiscriminatorConfig, Encoder, EncoderConfig, Generator, GeneratorConfig
from gecodec.models.began import BeganEncoder
from gecodec.models.refiner import ConditionalRefiner, RefinerConfig
from gecodec.models.solver import LatentSolver, SolverConfig
from gecodec.options import DEFAULT_MODEL
from gecodec.refine import LEVELS as REFINE_LEVELS, RUNGS, RefinementModel
from gecodec.search import SearchOptions
from gecodec.transform_coding import PREFIX as TRANSFORM_PREFIX, TENSORS as TRANSFORM_TENSORS, TransformModel

# EN's kinds: GE1 (a trained conv encoder) and GE0 (the BEGAN discriminator's encoder half).
ENCODER_KINDS = {"ge1": (Encoder, EncoderConfig), "ge0": (BeganEncoder, DiscriminatorConfig)}


@dataclass
class Bundle:
    """A loaded model: networks in eval mode on the CPU, plus what the codec needs to use them."""

    name: str
    generator: Generator
    encoder: Encoder | BeganEncoder
    calibration_lo: torch.Tensor  # (m,) lower end of each EN output's quantizer range
    calibration_hi: torch.Tensor  # (m,) upper end
    card: dict[str, Any] = field(default_factory=dict)
    ae_decoder: AutoencoderDecoder | None = None  # the GE1 autoencoder's own decoder, when trained with one
    solver: LatentSolver | None = None  # a joint model's learned start and steps
    decode: SearchOptions = field(default_factory=SearchOptions)  # the decoder's default schedule
    entropy: EntropyModel | None = None  # the probability tables of entropy-coded (version 2) files
    transform: TransformModel | None = None  # the coder of version-3 files (not part of the model id)
    crop: CropGeometry | None = None  # where the training crops have their eyes: how the encoder frames a photo
    refine: RefinementModel | None = None  # the DCT refinement layer's tables (not part of the model id)
    refine_learned: LearnedRefinement | None = None  # the learned refinement layer (not part of the model id)
    ladder: tuple[Rung, ...] | None = None  # what each quality writes, for a model with refinement tables
    sha256: str = ""  # of the tensors as stored; computed from the float32 weights for a bundle built in memory
    transform_sha256: str = ""  # the same, with the transform model's tensors too
    path: Path | None = None

    def __post_init__(self) -> None:
        if not self.sha256 or not self.transform_sha256:
            tensors = bundle_tensors(self, torch.float32)
            self.sha256 = self.sha256 or tensors_digest(tensors)
            self.transform_sha256 = self.transform_sha256 or tensors_digest(tensors, OUTSIDE_TRANSFORM_ID)

    @property
    def model_id(self) -> int:
        return int(self.sha256[:8], 16)

    @property
    def model_hex(self) -> str:
        return self.sha256[:8]

    @property
    def transform_id(self) -> int | None:
        """The id that version-3 files carry: it names the model and its transform model together."""
        return int(self.transform_sha256[:8], 16) if self.transform is not None else None

    @property
    def base_coder(self) -> TransformModel | EntropyModel | None:
        """What codes the base of the files this model's encoder writes at a quality: the transform model
        (version 3) when it has one, else the entropy model (version 2)."""
        return self.transform if self.transform is not None else self.entropy

    @property
    def image_size(self) -> int:
        return self.generator.config.image_size

    @property
    def default_quality(self) -> int | None:
        """The quality an encoder uses when the caller names no rate: the rung of the base coder's default base
        alone on a ladder, else that base quality; None without an entropy model."""
        if self.base_coder is None:
            return None
        quality = self.base_coder.default_quality
        if self.ladder is None:
            return quality
        return next(self.ladder.index(rung) for rung in default_bases(quality) if rung in self.ladder)

    @property
    def typical_bytes(self) -> np.ndarray | None:
        """Each quality's mean file size on the faces its card measured: the quality ladder's (training faces),
        else the base coder's validation curve, interpolated between its qualities; None when the card has
        neither. A quality search's first guess."""
        if self.ladder is not None:
            rows = self.card.get("quality_ladder", {}).get("rungs") or []
            sizes = [row.get("bytes") for row in rows if isinstance(row, dict)]
            return np.array(sizes, float) if len(sizes) == QUALITIES and all(_is_size(b) for b in sizes) else None
        curve = self.card.get("transform" if self.transform is not None else "rate", {}).get("val_curve") or []
        points = sorted((row.get("quality"), row.get("bytes")) for row in curve if isinstance(row, dict)
                        and isinstance(row.get("quality"), int) and _is_size(row.get("bytes")))
        if not points:
            return None
        return np.interp(np.arange(QUALITIES), *zip(*points))

    @property
    def m(self) -> int:
        return self.encoder.config.m

    @property
    def has_learned_start(self) -> bool:
        """Whether its solver computes a start z0 from the measurements, whose picture G(z0) layers may refine."""
        return self.solver is not None and self.solver.initializer is not None

    @property
    def layer_levels(self) -> dict[str, range]:
        """The refinement layers this model codes: kind (container.Layer.kind) -> its levels, coarsest first."""
        levels = {"dct": range(REFINE_LEVELS)} if self.refine is not None else {}
        if self.refine_learned is not None:
            levels["learned"] = self.refine_learned.levels
        return levels

    @property
    def encoder_kind(self) -> str:
        return "ge0" if isinstance(self.encoder, BeganEncoder) else "ge1"

    @property
    def decode_settings(self) -> dict[str, Any]:
        """What changes a file's decode but lies outside the tensors that the model id covers: the networks'
        configs (G's latent prior draws the search's starts) and the decode schedule. Bundles that share an id
        must agree on it (find_by_id)."""
        return {"generator": self.generator.config.to_dict(), "encoder_kind": self.encoder_kind,
                "encoder": self.encoder.config.to_dict(),
                "solver": self.solver.config.to_dict() if self.solver is not None else None,
                "decode": vars(self.decode)}


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def tensors_digest(tensors: dict[str, torch.Tensor], outside: tuple[str, ...] = OUTSIDE_MODEL_ID) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order (catalog.digest)."""
    return digest(((name, str(t.dtype), tuple(t.shape), t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
                   for name, t in tensors.items()), outside)


def bundle_tensors(bundle: Bundle, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every tensor a bundle file stores: weights in ``dtype``, the calibration in float32."""
    tensors: dict[str, torch.Tensor] = {}
    modules = {"generator": bundle.generator, "encoder": bundle.encoder, "ae_decoder": bundle.ae_decoder,
               "solver": bundle.solver}
    for prefix, module in modules.items():
        if module is not None:
            for key, value in module.state_dict().items():
                tensors[f"{prefix}.{key}"] = value.detach().to("cpu", dtype).contiguous()
    tensors["calibration.lo"] = bundle.calibration_lo.detach().float().cpu().contiguous()
    tensors["calibration.hi"] = bundle.calibration_hi.detach().float().cpu().contiguous()
    for coder in (bundle.entropy, bundle.transform):  # kept exact whatever the weights' dtype
        if coder is not None:
            tensors.update({k: v.detach().cpu().contiguous() for k, v in coder.to_tensors().items()})
    if bundle.refine is not None:
        tensors.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bundle.refine.to_arrays().items()})
    if bundle.refine_learned is not None:  # the network in ``dtype``, its tables exact
        tensors.update({k: v.to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
                        for k, v in bundle.refine_learned.to_tensors().items()})
    return tensors


def format_version(bundle: Bundle) -> str:
    if bundle.ladder is not None and any(rung.on_start and rung.level is None for rung in bundle.ladder):
        return START_BASES_FORMAT_VERSION
    if bundle.ladder is not None and any(rung.on_start for rung in bundle.ladder):
        return START_LAYERS_FORMAT_VERSION
    if bundle.refine_learned is not None and bundle.refine_learned.coarse is not None:
        return COARSE_LEVELS_FORMAT_VERSION
    if bundle.transform is not None:
        return TRANSFORM_FORMAT_VERSION
    if bundle.refine_learned is not None:
        return LEARNED_REFINE_FORMAT_VERSION
    if bundle.refine is not None:
        return REFINE_FORMAT_VERSION
    if bundle.entropy is not None:
        return ENTROPY_FORMAT_VERSION
    return FORMAT_VERSION if bundle.solver is None and bundle.decode == SearchOptions() else SOLVER_FORMAT_VERSION


def save_bundle(bundle: Bundle, path: str | Path, half: bool = False) -> str:
    """Write a bundle atomically; ``half`` stores weights as float16. Returns the SHA-256 of the stored tensors."""
    tensors = bundle_tensors(bundle, torch.float16 if half else torch.float32)
    config = {"generator": bundle.generator.config.to_dict(), "encoder": bundle.encoder.config.to_dict()}
    if bundle.encoder_kind != "ge1":  # files from before GE0 existed have no kind: they are GE1
        config["encoder_kind"] = bundle.encoder_kind
    if bundle.ae_decoder is not None:
        config["ae_decoder"] = {"channels": bundle.ae_decoder.channels}
    if bundle.solver is not None:
        config["solver"] = bundle.solver.config.to_dict()
    if bundle.decode != SearchOptions():
        config["decode"] = vars(bundle.decode).copy()
    if bundle.entropy is not None:
        config["entropy"] = {"qualities": QUALITIES, "default_quality": bundle.entropy.default_quality}
    if bundle.transform is not None:
        config["transform"] = {"qualities": QUALITIES, "default_quality": bundle.transform.default_quality}
    if bundle.crop is not None:
        config["crop"] = bundle.crop.to_dict()
    if bundle.refine is not None:
        config["refine"] = {"levels": REFINE_LEVELS, "rungs": RUNGS}
    if bundle.refine_learned is not None:
        config["refine_learned"] = bundle.refine_learned.network.config.to_dict()
        if bundle.refine_learned.coarse is not None:
            config["refine_learned_coarse"] = len(bundle.refine_learned.coarse)
    if bundle.ladder is not None:
        config["quality_ladder"] = [rung.to_list() for rung in bundle.ladder]
    metadata = {
        "format": FORMAT_NAME,
        "format_version": format_version(bundle),
        "name": bundle.name,
        "config": json.dumps(config, sort_keys=True),
        "card": json.dumps(bundle.card, sort_keys=True),
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:  # a full disk, a read-only folder: keep any earlier file
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the bundle ({getattr(exc, 'strerror', None) or exc})") from None
    return tensors_digest(tensors)


def update_bundle(path: str | Path, **fields: Any) -> Bundle:
    """Rewrite a bundle file with some fields replaced (the crop geometry, the refinement model, the quality
    ladder), keeping its weights' dtype and so its model id; BundleError, and the file as it was, when the
    result would not load."""
    bundle = load_bundle(path)
    with BundleFile(path) as stored:
        half = any(entry.dtype == "F16" for entry in stored.entries.values())
    for name, value in fields.items():
        setattr(bundle, name, value)
    if tensors_digest(bundle_tensors(bundle, torch.float16 if half else torch.float32)) != bundle.sha256:
        raise BundleError(f"{path}: rewriting the bundle would change its model id")
    path = Path(path)
    rewritten = path.with_name(path.name + ".new")
    save_bundle(bundle, rewritten, half=half)
    try:
        load_bundle(rewritten)  # a rewrite that would not load leaves the bundle as it was
    except BundleError:
        rewritten.unlink()
        raise
    os.replace(rewritten, path)
    return load_bundle(path)


def _submodule(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v.float() for k, v in tensors.items() if k.startswith(prefix + ".")}


# Caps on a bundle's config, checked before any network is built (formats/bundle.md), so a small file cannot ask
# for gigabytes of weights. The decode schedule obeys the limits of a file's decoder hints.
CONFIG_CAPS = {"image_size": 256, "latent_dim": 1024, "channels": 1024, "min_channels": 1024, "m": 4096,
               "depth": 8, "filters": 256, "embedding_dim": 1024, "hidden": 4096,
               "levels": MAX_LAYER_LEVEL // SUBLEVELS + 1,  # a learned layer's trained rates: its levels fit a file's
               "latent": 256, "features": 256}
STORED_DTYPES = ("F16", "F32")
MAX_TABLE_ENTRIES = 1 << 20  # an entropy model's tables, all qualities together


def _dataclass_fields(cls: type) -> dict[str, tuple[type, ...]]:
    """A config dataclass's fields and the types each may hold, from its annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: typing.get_args(hints[f.name]) or (hints[f.name],) for f in dataclasses.fields(cls)}


# Every config field and the types of its value; a field that is not here, or a value of another type, is refused
# before anything else reads the config. The sections in COMPLETE_SECTIONS must list every field; the others take
# their dataclass's default for a field they leave out (bundles made before the field existed).
CONFIG_SECTIONS = {
    "generator": _dataclass_fields(GeneratorConfig),
    "ae_decoder": {"channels": (int,)},
    "solver": _dataclass_fields(SolverConfig),
    "decode": _dataclass_fields(SearchOptions),
    "entropy": {"qualities": (int,), "default_quality": (int,)},
    "transform": {"qualities": (int,), "default_quality": (int,)},
    "crop": {"eyes": (list,)},
    "refine": {"levels": (int,), "rungs": (int,)},
    "refine_learned": _dataclass_fields(RefinerConfig),
}
ENCODER_FIELDS = {kind: _dataclass_fields(config_class) for kind, (_, config_class) in ENCODER_KINDS.items()}
CONFIG_VALUES = {"encoder_kind": (str,), "refine_learned_coarse": (int,), "quality_ladder": (list,)}
COMPLETE_SECTIONS = ("solver", "decode", "entropy", "transform", "crop", "refine")
TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", type(None): "null"}


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    """JSON's types: an integer is a number too, a boolean is neither, and a number is finite."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return int in types or float in types
    if isinstance(value, float):
        return float in types and math.isfinite(value)
    return isinstance(value, tuple(t for t in types if t not in (int, float)))


def _check_types(config: dict) -> None:
    for name, types in CONFIG_VALUES.items():
        if name in config and not _has_type(config[name], types):
            raise ValueError(f"config {name} = {config[name]!r:.40} is not {TYPE_NAMES[types[0]]}")
    kind = config.get("encoder_kind", "ge1")
    if kind not in ENCODER_FIELDS:
        raise ValueError(f"unknown encoder kind {kind!r:.40}")
    sections = {**CONFIG_SECTIONS, "encoder": ENCODER_FIELDS[kind]}
    unknown = sorted(set(config) - set(sections) - set(CONFIG_VALUES))
    missing = [name for name in ("generator", "encoder") if name not in config]
    if unknown or missing:
        raise ValueError(f"config fields {unknown[:3]} unknown" if unknown else f"config has no {missing[0]}")
    for name, fields in sections.items():
        part = config.get(name, {})
        if not isinstance(part, dict):
            raise ValueError(f"config {name} is not an object")
        for key, value in part.items():
            if key not in fields:
                raise ValueError(f"{name} field {key!r:.40} unknown")
            if not _has_type(value, fields[key]):
                raise ValueError(f"{name} {key} = {value!r:.40} is not {' or '.join(TYPE_NAMES[t] for t in fields[key])}")
        if name in config and name in COMPLETE_SECTIONS and set(part) != set(fields):
            raise ValueError(f"{name} fields {sorted(part)}, expected {sorted(fields)}")
    eyes = config.get("crop", {}).get("eyes", [[0, 0], [0, 0]])
    if not (len(eyes) == 2 and all(isinstance(eye, list) and len(eye) == 2 and all(_has_type(v, (float,)) for v in eye)
                                   for eye in eyes)):
        raise ValueError(f"crop eyes {eyes!r:.60} are not two [x, y] points")


def _check_config(config: dict) -> None:
    """Every field's name and type, then every size against its cap, before any network is built."""
    _check_types(config)
    for coder in ("entropy", "transform"):
        if coder in config and config[coder]["qualities"] != QUALITIES:
            raise ValueError(f"the {coder} model must have {QUALITIES} qualities")
    for part in ("generator", "encoder", "ae_decoder", "solver", "refine_learned"):
        for key, value in config.get(part, {}).items():
            if key in CONFIG_CAPS and isinstance(value, int) and not 1 <= value <= CONFIG_CAPS[key]:
                raise ValueError(f"{part} {key} = {value} is outside 1 to {CONFIG_CAPS[key]}")
    coarse = config.get("refine_learned_coarse")
    if coarse is not None and not ("refine_learned" in config and 1 <= coarse <= MAX_LAYER_LEVEL):
        raise ValueError(f"refine_learned_coarse = {coarse!r} is not 1 to {MAX_LAYER_LEVEL} coarse levels of a "
                         "learned layer")
    for key, value in config.get("decode", {}).items():
        low, high = HINT_LIMITS[key]
        if not low <= value <= high:
            raise ValueError(f"decode {key} = {value!r} is outside [{low}, {high}]")


def _ladder(config: dict) -> tuple[Rung, ...] | None:
    """The config's quality ladder, which needs refinement tables, an entropy model, the default base alone
    (the transform model's when there is one; searched, or on its start picture) as one of its rungs, a learned
    refinement layer with each learned level it names, and a learned start for rungs on the start picture, whose
    bases alone need a transform model too (version-4 files are transform-coded)."""
    if "quality_ladder" not in config:
        return None
    if "refine" not in config or "entropy" not in config:
        raise ValueError("a quality ladder needs an entropy model and refinement tables")
    ladder = ladder_from_config(config["quality_ladder"])
    if not set(default_bases(config.get("transform", config["entropy"])["default_quality"])) & set(ladder):
        raise ValueError("the quality ladder does not hold the default quality's base alone")
    learned = config.get("refine_learned")
    levels = range(-config.get("refine_learned_coarse", 0), tables_shape(RefinerConfig(**learned))[0] if learned else 0)
    if any(rung.kind == "learned" and rung.level not in levels for rung in ladder):
        raise ValueError(f"the quality ladder names learned refinement levels outside the bundle's {levels.start} to "
                         f"{levels.stop - 1}")
    if any(rung.on_start for rung in ladder) and config.get("solver", {}).get("init") != "learned":
        raise ValueError("the quality ladder puts layers on the start picture, and the model has no learned start")
    if any(rung.on_start and rung.level is None for rung in ladder) and "transform" not in config:
        raise ValueError("the quality ladder decodes bases alone to their start pictures, which needs a transform "
                         "model")
    return ladder


# The terms of the data the shipped bundles were trained on, for those whose cards predate the card's data_terms:
# this project's code trained all three on CelebA alone (their cards' "data"), and the id names their weights.
CELEBA_TERMS = ("trained on CelebA (Liu et al. 2015: non-commercial research use only); use beyond non-commercial "
                "research depends on those terms")
SHIPPED_DATA_TERMS = {"ac979f61": CELEBA_TERMS, "aed91f57": CELEBA_TERMS, "93851b1c": CELEBA_TERMS}


def data_terms(bundle: Bundle) -> str | None:
    """What the bundle's training data allows: its card's data_terms, else a shipped bundle's known terms."""
    return bundle.card.get("data_terms") or SHIPPED_DATA_TERMS.get(bundle.model_hex)


def default_bases(quality: int) -> tuple[Rung, Rung]:
    """The rungs of the base alone at ``quality``: searched, and on its start picture."""
    return Rung(quality), Rung(quality, on_start=True)


def _build(config: dict) -> dict[str, nn.Module | None]:
    """The bundle's networks, as its config describes them (on whatever device is current)."""
    generator = Generator(GeneratorConfig(**config["generator"]))
    encoder_class, encoder_config = ENCODER_KINDS[config.get("encoder_kind", "ge1")]
    encoder = encoder_class(encoder_config(**config["encoder"]))
    ae_decoder = AutoencoderDecoder(encoder.config, **config["ae_decoder"]) if "ae_decoder" in config else None
    solver = LatentSolver(SolverConfig(**config["solver"])) if "solver" in config else None
    refiner = ConditionalRefiner(RefinerConfig(**config["refine_learned"])) if "refine_learned" in config else None
    if solver is not None and (solver.config.m, solver.config.latent_dim) != (encoder.config.m,
                                                                             generator.config.latent_dim):
        raise ValueError("the solver's sizes do not match G and EN")
    return {"generator": generator, "encoder": encoder, "ae_decoder": ae_decoder, "solver": solver,
            LEARNED_PREFIX + "net": refiner}


def _check_stored_tensors(entries: dict[str, Entry], config: dict) -> None:
    """Every tensor's name, shape and dtype against the config, from the file's header, before reading any."""
    with torch.device("meta"):  # shapes without memory
        modules = _build(config)
    expected = {f"{prefix}.{key}": (tuple(value.shape), STORED_DTYPES) for prefix, module in modules.items()
                if module is not None for key, value in module.state_dict().items()}
    m = modules["encoder"].config.m
    expected.update({"calibration.lo": ((m,), ("F32",)), "calibration.hi": ((m,), ("F32",))})
    if "entropy" in config:
        expected.update({"entropy.mean": ((m,), ("F32",)), "entropy.scale": ((m,), ("F32",)),
                         "entropy.steps": ((QUALITIES,), ("F32",)), "entropy.radii": ((QUALITIES,), ("I32",)),
                         "entropy.frequencies": (None, ("I32",))})
    if "transform" in config:
        shapes = {"mean": (m,), "basis": (m, m), "steps": (QUALITIES,), "table_of": (QUALITIES, m), "radii": None,
                  "frequencies": None}
        expected.update({TRANSFORM_PREFIX + name: (shapes[name], ("F32",) if dtype == torch.float32 else ("I32",))
                         for name, dtype in TRANSFORM_TENSORS.items()})
    if "refine" in config:
        if config["refine"] != {"levels": REFINE_LEVELS, "rungs": RUNGS}:
            raise ValueError(f"the refinement model must have {REFINE_LEVELS} levels and {RUNGS} rungs")
        expected.update({"refine.scales": ((3, 8, 8), ("F32",)), "refine.rungs": ((REFINE_LEVELS, 3, 8, 8), ("I32",)),
                         "refine.radii": ((RUNGS,), ("I32",)), "refine.frequencies": (None, ("I32",))})
    if "refine_learned" in config:
        expected[LEARNED_PREFIX + "tables"] = (tables_shape(modules[LEARNED_PREFIX + "net"].config), ("I32",))
        if "refine_learned_coarse" in config:
            expected[LEARNED_PREFIX + "coarse_tables"] = (
                (config["refine_learned_coarse"], *tables_shape(modules[LEARNED_PREFIX + "net"].config)[1:]), ("I32",))
    unexpected = sorted(set(entries) - set(expected))
    missing = sorted(set(expected) - set(entries))
    if unexpected or missing:
        raise ValueError(f"tensors {(unexpected or missing)[:3]} {'not in' if unexpected else 'missing from'} "
                         "the config's networks")
    for name, entry in entries.items():
        shape, dtypes = expected[name]
        if shape is None:  # the tables: one dimension, bounded
            shape = (min(entry.shape[0], MAX_TABLE_ENTRIES),) if len(entry.shape) == 1 else None
        if entry.dtype not in dtypes or entry.shape != shape:
            raise ValueError(f"tensor {name} is {entry.dtype} {entry.shape}, the config needs {shape}")


def _read_tensors(stored: BundleFile) -> dict[str, torch.Tensor]:
    """Every tensor, each read into a buffer of its own that the tensor then uses (the header was checked)."""
    tensors = {}
    for name, entry in stored.entries.items():
        dtype = getattr(torch, DTYPES[entry.dtype][0].removeprefix("torch."))
        data = stored.tensor_bytes(name)
        flat = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(entry.shape)
    return tensors


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle file; raise BundleError if it is not a valid gecodec bundle.

    The header is checked against the file and its caps (catalog.BundleFile), the config's fields against their
    types and caps, and every stored tensor against the config, before any tensor is read; weights that are not
    finite are refused.
    """
    path = Path(path)
    try:
        with BundleFile(path) as stored:
            metadata, config = stored.metadata, stored.config()
            _check_config(config)
            _check_stored_tensors(stored.entries, config)
            tensors = _read_tensors(stored)
        bad = next((name for name, t in tensors.items() if not bool(torch.isfinite(t.float()).all())), None)
        if bad is not None:
            raise ValueError(f"tensor {bad} holds non-finite values")
        modules = _build(config)
        for prefix, module in modules.items():
            if module is not None:
                module.load_state_dict(_submodule(tensors, prefix))
                module.eval().requires_grad_(False)
        refiner = modules[LEARNED_PREFIX + "net"]
        decode = SearchOptions(**config["decode"]) if "decode" in config else SearchOptions()
        card = json.loads(metadata.get("card", "{}"))
        bundle = Bundle(
            name=metadata["name"],
            generator=modules["generator"],
            encoder=modules["encoder"],
            calibration_lo=tensors["calibration.lo"].float(),
            calibration_hi=tensors["calibration.hi"].float(),
            card=card if isinstance(card, dict) else {},
            ae_decoder=modules["ae_decoder"],
            solver=modules["solver"],
            decode=decode,
            entropy=EntropyModel.from_tensors(tensors, config["entropy"]["default_quality"])
            if "entropy" in config else None,
            transform=TransformModel.from_tensors(tensors, config["transform"]["default_quality"])
            if "transform" in config else None,
            crop=CropGeometry.from_dict(config["crop"], modules["generator"].config.image_size)
            if "crop" in config else None,
            refine=RefinementModel.from_arrays({k: v.numpy() for k, v in tensors.items() if k.startswith("refine.")})
            if "refine" in config else None,
            refine_learned=LearnedRefinement.from_tensors(refiner, tensors) if refiner is not None else None,
            ladder=_ladder(config),
            sha256=tensors_digest(tensors),
            transform_sha256=tensors_digest(tensors, OUTSIDE_TRANSFORM_ID),
            path=path,
        )
    except BundleError:  # from BundleFile, which names the file
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, GecError) as exc:
        raise BundleError(f"{path}: inconsistent model bundle ({str(exc).splitlines()[0]})") from None
    if not bool((bundle.calibration_hi > bundle.calibration_lo).all()):
        raise BundleError(f"{path}: quantizer calibration does not match the encoder's m = {bundle.m}")
    return bundle


@lru_cache(maxsize=8)
def _load_cached(path: Path, version: tuple[int, int, int]) -> Bundle:
    return load_bundle(path)


def _load_path(path: Path) -> Bundle:
    """A bundle file, loaded once per file version (inode, size and modification time)."""
    try:
        path = path.resolve()
        st = path.stat()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise BundleError(f"{path}: cannot open the model bundle ({getattr(exc, 'strerror', None) or exc})") from None
    return _load_cached(path, (st.st_ino, st.st_size, st.st_mtime_ns))


MODEL_ID = re.compile(r"[0-9a-fA-F]{8}")


def names_a_path(target: str) -> bool:
    """Whether ``--model`` / load_model is given a file, not a name or an id: it holds a path separator or ends in
    .safetensors (./NAME names a file NAME in the current folder)."""
    return any(sep and sep in target for sep in (os.sep, os.altsep)) or target.endswith(BUNDLE_SUFFIX)


def load_model(name_or_path: str | os.PathLike | None = None) -> Bundle:
    """Load a bundle; None means the shipped default. A path (names_a_path) is that file; 8 hex digits are an id,
    found by content (find_by_id); anything else is a name: the file stem of a bundle in the shipped folder, then
    in the user folder. A bare word is never taken from the current folder. A bundle found by path or name that has
    a shipped bundle's model id must decode as the shipped one does."""
    target = DEFAULT_MODEL if name_or_path is None else os.fspath(name_or_path)
    if MODEL_ID.fullmatch(target):
        return find_by_id(int(target, 16))
    if names_a_path(target):
        path = Path(target)
        if not path.exists():
            raise ModelNotFoundError(f"{path}: no such model bundle file")
    else:
        path = next((p for p in available_bundles() if p.stem == target), None)
        if path is None:
            raise ModelNotFoundError(f"model {target!r} is not available (looked in {SHIPPED_DIR} and "
                                     f"{user_model_dir()}; see `gec models`)")
    bundle = _load_path(path)
    check_shipped_claim(bundle)
    return bundle


def check_shipped_claim(bundle: Bundle) -> None:
    """BundleError when a bundle from outside the shipped folder has a shipped bundle's model id but other
    decode_settings: files naming that id decode with the shipped bundle, not as this one would make them."""
    if bundle.path is None or is_shipped(bundle.path):
        return
    for path in find_bundles(bundle.model_id, shipped_only=True):
        shipped = _load_path(path)
        if shipped.decode_settings != bundle.decode_settings:
            raise BundleError(f"{bundle.path}: has the model id {bundle.model_hex} of the shipped {shipped.name} but "
                              "another config (decode schedule or networks), so files would not decode as made")


def find_by_id(model_id: int) -> Bundle:
    """The bundle whose verified id (the model id, or the transform id of version-3 files) matches a .gec header's:
    the shipped one, else one in the user folder. Bundles that cannot be loaded are skipped with a warning; user
    bundles that share the id but would decode differently (decode_settings) are an error, not a choice."""
    wanted = f"{model_id:08x}"
    found: list[Bundle] = []
    for path in find_bundles(model_id):
        try:
            bundle = _load_path(path)
        except BundleError as exc:
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        if wanted in (bundle.model_hex, bundle.transform_sha256[:8]):  # not so if it changed since it was hashed
            found.append(bundle)
    if not found:
        raise ModelNotFoundError(f"the file needs model {wanted}, which is not installed (see `gec models`; "
                                 f"put its bundle in {user_model_dir()})")
    other = next((b for b in found[1:] if b.decode_settings != found[0].decode_settings), None)
    if other is not None:
        raise BundleError(f"model {wanted} is in both {found[0].path} and {other.path}, whose configs decode it "
                          "differently; remove the one you do not trust")
    return found[0]
