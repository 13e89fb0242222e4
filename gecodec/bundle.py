"""Model bundles: one safetensors file holding G, EN, the quantizer calibration, configs and a model card.

safetensors stores tensors and a string-to-string metadata map and never unpickles anything, so a
bundle from an untrusted source cannot run code. The bundle id is derived from a hash of its tensors.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gecodec.align import CropGeometry
from gecodec.catalog import (COARSE_LEVELS_FORMAT_VERSION, ENTROPY_FORMAT_VERSION, FORMAT_NAME, FORMAT_VERSION,
                             LEARNED_REFINE_FORMAT_VERSION, OUTSIDE_MODEL_ID, OUTSIDE_TRANSFORM_ID,
                             REFINE_FORMAT_VERSION, SHIPPED_DIR, SOLVER_FORMAT_VERSION, START_LAYERS_FORMAT_VERSION,
                             TRANSFORM_FORMAT_VERSION,
                             available_bundles, digest, read_metadata, user_model_dir)
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
        base_alone = Rung(self.base_coder.default_quality)
        return self.ladder.index(base_alone) if self.ladder is not None else base_alone.base_quality

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
    from safetensors import safe_open

    bundle = load_bundle(path)
    with safe_open(str(path), framework="numpy") as handle:
        half = any(handle.get_slice(name).get_dtype() == "F16" for name in handle.keys())
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


def _check_caps(config: dict) -> None:
    for coder in ("entropy", "transform"):
        part = config.get(coder)
        if part is not None and not (isinstance(part, dict) and part.get("qualities") == QUALITIES):
            raise ValueError(f"the {coder} model must have {QUALITIES} qualities")
    for part in ("generator", "encoder", "ae_decoder", "solver", "refine_learned"):
        for key, value in config.get(part, {}).items():
            if key in CONFIG_CAPS and isinstance(value, int) and not 1 <= value <= CONFIG_CAPS[key]:
                raise ValueError(f"{part} {key} = {value} is outside 1 to {CONFIG_CAPS[key]}")
    coarse = config.get("refine_learned_coarse")
    if coarse is not None and not ("refine_learned" in config and isinstance(coarse, int)
                                   and not isinstance(coarse, bool) and 1 <= coarse <= MAX_LAYER_LEVEL):
        raise ValueError(f"refine_learned_coarse = {coarse!r} is not 1 to {MAX_LAYER_LEVEL} coarse levels of a "
                         "learned layer")
    for key, value in config.get("decode", {}).items():
        low, high = HINT_LIMITS.get(key, (None, None))
        if low is not None and not (isinstance(value, (int, float)) and low <= value <= high):
            raise ValueError(f"decode {key} = {value!r} is outside [{low}, {high}]")


def _ladder(config: dict) -> tuple[Rung, ...] | None:
    """The config's quality ladder, which needs refinement tables, an entropy model, the default base alone
    (the transform model's when there is one) as one of its rungs, a learned refinement layer with each
    learned level it names, and a learned start for rungs whose layer refines the start picture."""
    if "quality_ladder" not in config:
        return None
    if "refine" not in config or "entropy" not in config:
        raise ValueError("a quality ladder needs an entropy model and refinement tables")
    ladder = ladder_from_config(config["quality_ladder"])
    if Rung(config.get("transform", config["entropy"])["default_quality"]) not in ladder:
        raise ValueError("the quality ladder does not hold the default quality's base alone")
    learned = config.get("refine_learned")
    levels = range(-config.get("refine_learned_coarse", 0), tables_shape(RefinerConfig(**learned))[0] if learned else 0)
    if any(rung.kind == "learned" and rung.level not in levels for rung in ladder):
        raise ValueError(f"the quality ladder names learned refinement levels outside the bundle's {levels.start} to "
                         f"{levels.stop - 1}")
    if any(rung.on_start for rung in ladder) and config.get("solver", {}).get("init") != "learned":
        raise ValueError("the quality ladder puts layers on the start picture, and the model has no learned start")
    return ladder


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


def _check_stored_tensors(path: Path, config: dict) -> None:
    """Every tensor's name, shape and dtype against the config, from the file's index, before loading any."""
    from safetensors import safe_open

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
    with safe_open(str(path), framework="pt") as handle:
        stored = {name: handle.get_slice(name) for name in handle.keys()}
        unexpected = sorted(set(stored) - set(expected))
        missing = sorted(set(expected) - set(stored))
        if unexpected or missing:
            raise ValueError(f"tensors {(unexpected or missing)[:3]} {'not in' if unexpected else 'missing from'} "
                             "the config's networks")
        for name, tensor in stored.items():
            shape, dtypes = expected[name]
            found = tuple(tensor.get_shape())
            if shape is None:  # the tables: one dimension, bounded
                shape = (min(found[0], MAX_TABLE_ENTRIES),) if len(found) == 1 else None
            if tensor.get_dtype() not in dtypes or found != shape:
                raise ValueError(f"tensor {name} is {tensor.get_dtype()} {found}, the config needs {shape}")


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle file; raise BundleError if it is not a valid gecodec bundle.

    The config is checked against caps and every stored tensor against the config before anything is
    allocated; weights that are not finite are refused.
    """
    path = Path(path)
    metadata = read_metadata(path)
    try:
        config = json.loads(metadata["config"])
        if not isinstance(config, dict):
            raise ValueError("config is not a JSON object")
        _check_caps(config)
        _check_stored_tensors(path, config)
        tensors = load_file(str(path))
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
        if "decode" in config and set(config["decode"]) != set(vars(decode)):
            raise ValueError(f"decode schedule fields {sorted(config['decode'])}, expected {sorted(vars(decode))}")
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
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError, AttributeError, GecError) as exc:
        raise BundleError(f"{path}: inconsistent model bundle ({str(exc).splitlines()[0]})") from None
    if not bool((bundle.calibration_hi > bundle.calibration_lo).all()):
        raise BundleError(f"{path}: quantizer calibration does not match the encoder's m = {bundle.m}")
    return bundle


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime: float) -> Bundle:
    return load_bundle(path)


def load_model(name_or_path: str | os.PathLike | None = None) -> Bundle:
    """Load a bundle by path, by name (file stem), or by id (8 hex digits); None means the shipped default."""
    target = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    path = Path(target)
    if not path.is_file():
        path = _find(target)
    path = path.resolve()
    return _load_cached(path, path.stat().st_mtime)


def _find(name_or_id: str) -> Path:
    candidates = available_bundles()
    for path in candidates:
        if path.stem == name_or_id:
            return path
    wanted = name_or_id.lower()
    for path in candidates:
        try:
            bundle = _load_cached(path.resolve(), path.stat().st_mtime)
        except (BundleError, OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop in resolve()
            warnings.warn(f"{path}: skipped while looking for model {name_or_id} ({exc})", stacklevel=2)
            continue
        if wanted in (bundle.model_hex, bundle.transform_sha256[:8] if bundle.transform is not None else None):
            return path
    raise ModelNotFoundError(
        f"model {name_or_id!r} is not available (looked in {SHIPPED_DIR} and {user_model_dir()}; see `gec models`)"
    )


def find_by_id(model_id: int) -> Bundle:
    """The bundle whose id matches a .gec header's model id."""
    try:
        return load_model(f"{model_id:08x}")
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"the file needs model {model_id:08x}, which is not installed (see `gec models`; "
            f"put its bundle in {user_model_dir()})"
        ) from None
