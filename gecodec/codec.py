"""Codec: keeps one loaded model and turns image tensors into .gec bytes and back."""

from __future__ import annotations

import copy
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from gecodec import container
from gecodec.bundle import Bundle, load_model
from gecodec.container import Header
from gecodec.errors import DecodeError, FormatError, GecError, OptionError
from gecodec.align import Placement, frame_decoded
from gecodec.imageio import ImageInput, open_image, pixels_to_tensor, tensor_to_image, tensor_to_pixels
from gecodec.ladder import Rung
from gecodec.learned_layer import LearnedRefinement
from gecodec.rate_control import check_rate, entropy_files, rung_at
from gecodec.refine import RefinementModel
from gecodec.operators import GaussianMeasurement
from gecodec.quantize import dequantize, pack_bits, quantize, unpack_bits
from gecodec.search import Progress, SearchOptions, latent_search
from gecodec.search_budget import DRAW_FLOPS, check_search_budget, forward_macs, gaussian_flops, pass_flops, search_flops

# cs matrices kept per codec, in bytes; the one in use is kept whatever its size (up to 3HW x 3HW floats: 604 MB at
# 64x64), and the cache is emptied before a new one is drawn when both would not fit.
GAUSSIAN_CACHE_BYTES = 256 << 20
# A matrix draw runs on one core (50 ms for a count of 1,000 at 64x64), so small ones are drawn this many at a
# time on worker threads, when a batch brings several seeds; large ones one at a time, to bound memory.
MATRICES_AT_ONCE, MATRIX_BYTES_AT_ONCE = 2, 256 << 20
MAX_START_RMS = 20.0  # a learned start's latent beyond this RMS is no draw of N(0, I): a broken solver


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None picks CUDA when it is available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device {device!r} asked for, but CUDA is not available")
    return resolved


def search_options(header: Header | None = None, base: SearchOptions = SearchOptions(), **overrides: Any
                   ) -> SearchOptions:
    """The model's schedule (``base``), then the file's decoder hints, then the caller's explicit (non-None) settings."""
    known = {f.name for f in fields(SearchOptions)}
    unknown = set(overrides) - known
    if unknown:
        raise OptionError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    chosen = dict(header.hints) if header is not None else {}
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    return replace(base, **chosen)


@dataclass(frozen=True)
class Source:
    """What a file records about the picture it was made from: its size (width, height), where the face lies in it
    (a placement) when that is not its centre square, and whether it was grayscale."""

    size: tuple[int, int] | None = None
    placement: Placement | None = None
    grayscale: bool = False

    def header_fields(self, model_size: int) -> dict[str, Any]:
        """Header fields: a position (the size and the face's square) where the face is not the centre square,
        else the size alone where it is not the model's."""
        position = self.placement.position(*self.size) if self.placement is not None and self.size else None
        if position is not None and position == Placement.centre_square(*self.size).position(*self.size):
            position = None
        keep_size = self.size is not None and position is None and tuple(self.size) != (model_size, model_size)
        return {"original_size": tuple(self.size) if keep_size else None, "position": position,
                "grayscale": self.grayscale}


@dataclass(frozen=True)
class ParsedFile:
    header: Header
    values: torch.Tensor  # dequantized measurements, (count,)
    layer: bytes = b""  # the refinement layer's bytes, when the file has one


class Codec:
    """Encode and decode with one model bundle on one device. Reuse it for batches."""

    def __init__(self, model: str | Bundle | None = None, device: str | torch.device | None = None) -> None:
        self.bundle = model if isinstance(model, Bundle) else load_model(model)
        self.device = resolve_device(device)
        on_cpu = self.device.type == "cpu"
        # Bundles are cached and shared; move copies, never the cached modules themselves.
        self.generator = self.bundle.generator if on_cpu else copy.deepcopy(self.bundle.generator).to(self.device)
        self.encoder = self.bundle.encoder if on_cpu else copy.deepcopy(self.bundle.encoder).to(self.device)
        solver = self.bundle.solver
        self.solver = solver if on_cpu or solver is None else copy.deepcopy(solver).to(self.device)
        self.lo = self.bundle.calibration_lo.to(self.device)
        self.hi = self.bundle.calibration_hi.to(self.device)
        self._gaussians: OrderedDict[tuple[int, int], GaussianMeasurement] = OrderedDict()
        self._generator_macs: int | None = None  # counted at the first decode (gecodec.search_budget)
        self._encoder_macs = 0
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False

    @property
    def image_size(self) -> int:
        return self.bundle.image_size

    def gaussian(self, count: int, seed: int) -> GaussianMeasurement:
        """The cs-mode matrix for (count, seed); the few most recently used are kept, so memory stays bounded
        however many seeds a batch of files brings."""
        key = (count, seed)
        if key in self._gaussians:
            self._gaussians.move_to_end(key)
        else:
            self._make_room(self._matrix_bytes(count))
            self._gaussians[key] = GaussianMeasurement(count, self.image_size, seed).to(self.device)
        return self._gaussians[key]

    def _matrix_bytes(self, count: int) -> int:
        return count * 3 * self.image_size**2 * 4

    def _make_room(self, needed: int) -> None:
        """Drop the least recently used cs matrices until ``needed`` more bytes fit in GAUSSIAN_CACHE_BYTES."""
        held = sum(self._matrix_bytes(count) for count, _ in self._gaussians)
        while self._gaussians and held + needed > GAUSSIAN_CACHE_BYTES:
            (count, _), _ = self._gaussians.popitem(last=False)
            held -= self._matrix_bytes(count)

    def _draw_gaussians(self, keys: list[tuple[int, int]]) -> None:
        """Draw the cs matrices for up to MATRICES_AT_ONCE (count, seed) keys into the cache, in parallel
        when they are small."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._gaussians]
        needed = sum(self._matrix_bytes(count) for count, _ in missing)
        if len(missing) < 2 or needed > MATRIX_BYTES_AT_ONCE:
            return  # gaussian() draws them one by one
        self._make_room(needed)
        with ThreadPoolExecutor(len(missing)) as pool:
            drawn = pool.map(lambda key: GaussianMeasurement(key[0], self.image_size, key[1]), missing)
            for key, matrix in zip(missing, drawn):
                self._gaussians[key] = matrix.to(self.device)

    # -- encoding ---------------------------------------------------------------------------------

    def rate_settings(self, bits: int | None = None, quality: int | None = None, target_bytes: int | None = None,
                      mode: str = "ge", refine: int | None = None) -> dict[str, int | None]:
        """The caller's rate settings, checked, with the model's default filled in (rate_control.check_rate)."""
        return check_rate(self.bundle, bits, quality, target_bytes, mode, refine)

    def encode_batch(
        self,
        images: torch.Tensor,
        bits: int | None = None,
        mode: str = "ge",
        seed: int = 0,
        count: int | None = None,
        sources: Sequence[Source] | None = None,
        hints: dict[str, Any] | None = None,
        quality: int | None = None,
        target_bytes: int | None = None,
        refine: int | None = None,
    ) -> list[bytes]:
        """Encode (B, 3, S, S) images in [-1, 1] at the model's size S into one .gec file each.

        Rate: ``quality`` (0..100) or ``target_bytes`` (the best file that fits) give entropy-coded files
        (version 3 on a model with a transform model, else version 2); ``bits`` gives version-1 files of
        fixed-length values. At most one; the default is the model's default quality, or 8 bits for a model
        without an entropy model (and in cs mode). On a model with a
        quality ladder (gecodec/ladder.py) a quality may add a refinement layer, and ``target_bytes`` searches the
        ladder's qualities. ``refine`` (0..15) adds a layer of that level to the default base (or, on a model
        without a ladder, to the base at ``quality``): on the start picture when the model has a learned start.
        sources describe each image's picture: its size, where the face lies in it, and its greyness.
        """
        rate = self.rate_settings(bits, quality, target_bytes, mode, refine)
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise OptionError(f"expected images of shape (B, 3, {size}, {size}), got {tuple(images.shape)}")
        framing = [source.header_fields(size) for source in (sources or [Source()] * len(images))]
        images = images.to(self.device, torch.float32)
        if rate["target_bytes"] is not None:
            return entropy_files(self, images, framing, seed, hints, None, rate["target_bytes"])
        if rate["quality"] is not None or refine is not None:
            rung = rung_at(self.bundle, rate["quality"], refine)
            files = entropy_files(self, images, framing, seed, hints, rung.base_quality, None,
                                  rung.on_start and rung.level is None)
            return files if rung.level is None else self._with_layers(files, images.cpu(), rung)
        bits = rate["bits"]
        with torch.no_grad():
            if mode == "ge":
                if count not in (None, self.bundle.m):
                    raise OptionError(f"ge mode measures m = {self.bundle.m} values with this model, not {count}")
                ints = quantize(self.encoder(images), self.lo, self.hi, bits).cpu().numpy()
                ranges: list[tuple[float, float] | None] = [None] * len(images)
            elif mode == "cs":
                count = count or self.bundle.m
                if not 1 <= count <= 3 * size * size:
                    raise OptionError(f"cs mode takes 1 to {3 * size * size} measurements, not {count}")
                measurements = self.gaussian(count, seed)(images).cpu()
                ranges = [_float32_range(row) for row in measurements]
                ints = np.stack([
                    quantize(row, torch.tensor(lo), torch.tensor(hi), bits).numpy()
                    for row, (lo, hi) in zip(measurements, ranges)
                ])
            else:
                raise OptionError(f"unknown mode {mode!r} (use ge or cs)")
        files = []
        for row, value_range, fields_of_source in zip(ints, ranges, framing):
            header = Header(
                model_id=self.bundle.model_id, bits=bits, seed=seed, mode=mode,
                count=count if mode == "cs" else None, value_range=value_range, hints=dict(hints or {}),
                **fields_of_source,
            )
            files.append(container.write(header, pack_bits(row, bits)))
        return files

    def _with_layers(self, bases: list[bytes], images: torch.Tensor, rung: Rung) -> list[bytes]:
        """Each base file with the rung's refinement layer."""
        pixels = self.layer_bases(bases, rung.on_start)
        return self.with_layer_bytes(bases, self.layers(images, pixels, rung.level, rung.kind), rung.level,
                                      rung.kind, rung.on_start)

    def base_decodes(self, bases: list[bytes]) -> torch.Tensor:
        """The base files' decodes as 8-bit pixels (what a decoder adds a layer to), on the CPU: each searched
        alone, as decode_parsed searches a file with a layer on its search (a base on its start picture too: a
        layered file is version 3)."""
        parsed = [self.parse(container.with_start_picture(data, False)) for data in bases]
        return pixels_to_tensor(tensor_to_pixels(self.decode_parsed(parsed, batch_size=1)))

    def start_pictures(self, values: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """G(z0) for the learned start z0 of each row of dequantized measurements (B, m): the picture that layers on
        the start refine, in [-1, 1] on the CPU. It takes no search: one pass of the initialiser and of G."""
        if not self.bundle.has_learned_start:
            raise OptionError(f"model {self.bundle.name} has no learned start to refine")
        pictures = []
        with torch.no_grad():
            for chunk in values.split(batch_size):
                z0 = self.solver.start(chunk.to(self.device))
                if not bool(torch.isfinite(z0).all()) or float(z0.pow(2).mean(1).sqrt().max()) > MAX_START_RMS:
                    raise DecodeError(f"model {self.bundle.name}'s learned start is degenerate (non-finite, or far "
                                      f"outside the prior N(0, I))")
                pictures.append(self.generator(z0).float().cpu().clamp(-1, 1))
        return torch.cat(pictures)

    def layer_bases(self, bases: list[bytes], on_start: bool) -> torch.Tensor:
        """What a decoder adds a layer to, as 8-bit pixels on the CPU: the base files' start pictures
        (``on_start``), else their decodes."""
        if not on_start:
            return self.base_decodes(bases)
        return self.start_layer_bases(torch.stack([self.parse(data).values for data in bases]))

    def start_layer_bases(self, values: torch.Tensor) -> torch.Tensor:
        """The start pictures of rows of dequantized measurements (B, m) as 8-bit pixels: what a layer on the start
        picture refines."""
        return pixels_to_tensor(tensor_to_pixels(self.start_pictures(values)))

    def layered(self, bases: list[bytes], images: torch.Tensor, pixels: torch.Tensor, level: int, kind: str = "dct",
                on_start: bool = False) -> tuple[list[bytes], torch.Tensor]:
        """The base files with a refinement layer of ``kind`` at ``level`` coding (B, 3, S, S) ``images`` past
        ``pixels`` (layer_bases: their decodes, or with ``on_start`` their start pictures), and what a receiver
        decodes from them: the encoder knows it exactly."""
        layers = self.layers(images, pixels, level, kind)
        decoded = torch.stack([self.refined(base, layer, level, kind) for base, layer in zip(pixels, layers)])
        return self.with_layer_bytes(bases, layers, level, kind, on_start), decoded

    def layers(self, images: torch.Tensor, pixels: torch.Tensor, level: int, kind: str) -> list[bytes]:
        """The layer bytes of ``kind`` at ``level`` that code (B, 3, S, S) images past pixels."""
        model = self._layer_model(kind, level, OptionError)
        if kind == "dct":
            return [model.code((image - base).numpy(), level) for image, base in zip(images, pixels)]
        return model.code(images, pixels, level)

    def with_layer_bytes(self, bases: list[bytes], layers: list[bytes], level: int, kind: str, on_start: bool
                          ) -> list[bytes]:
        """Each base file with its layer's bytes appended and named in its header."""
        check = self._layer_model(kind, level, OptionError).check_for(level)
        return [container.with_layer(base, layer, level, check, kind, on_start) for base, layer in zip(bases, layers)]

    def _layer_model(self, kind: str, level: int, error: type[GecError]) -> RefinementModel | LearnedRefinement:
        """The bundle's refinement model of ``kind``; ``error`` unless it has one with ``level``."""
        model = self.bundle.refine if kind == "dct" else self.bundle.refine_learned
        if model is None:
            raise error(f"model {self.bundle.name} has no {kind} refinement layer")
        levels = self.bundle.layer_levels[kind]
        if level not in levels:
            raise error(f"{kind} refinement level {level} is not one of model {self.bundle.name}'s "
                        f"{levels.start} to {levels.stop - 1}")
        return model

    # -- decoding ---------------------------------------------------------------------------------

    def parse(self, data: bytes) -> ParsedFile:
        """Read a .gec file made for this model and dequantize its measurements."""
        header, payload = container.read(data)
        if header.model_id != (self.bundle.transform_id if header.transform else self.bundle.model_id):
            holds = f"model {self.bundle.model_hex}" + (f" (transform id {self.bundle.transform_sha256[:8]})"
                                                         if self.bundle.transform is not None else "")
            raise FormatError(f"file needs model {header.model_hex}, this codec holds {holds}")
        if header.quality is not None:
            coder = self.bundle.transform if header.transform else self.bundle.entropy
            if coder is None:  # (a transform-coded file matched the transform id, so only version 2 gets here)
                raise FormatError(f"the file is entropy-coded, and model {self.bundle.model_hex} has no entropy model")
            base, layer = payload, b""
            if header.layer is not None:
                base, layer = self._split_layer(header, payload)
            if header.start_picture and not self.bundle.has_learned_start:
                raise FormatError(f"the file decodes to its start picture, and model {self.bundle.model_hex} has no "
                                  "learned start")
            return ParsedFile(header, coder.dequantize(coder.decode(base, header.quality), header.quality), layer)
        if not 2 <= header.bits <= 12:
            raise FormatError(f"unsupported bit depth {header.bits}")
        count = header.count if header.count is not None else self.bundle.m
        if header.mode == "ge" and count != self.bundle.m:
            raise FormatError(f"file has {count} measurements, the model's encoder makes {self.bundle.m}")
        if count > 3 * self.image_size**2:  # the encoder's own limit: A has at most as many rows as pixel values
            raise FormatError(f"file has {count} measurements, more than the {3 * self.image_size**2} values "
                              f"of a {self.image_size}x{self.image_size} image")
        ints = torch.from_numpy(unpack_bits(payload, count, header.bits))
        if header.value_range is None:  # cs files always carry a range; a ge file may (formats/gec.md)
            lo, hi = self.bundle.calibration_lo, self.bundle.calibration_hi
        else:
            lo, hi = (torch.tensor(v, dtype=torch.float32) for v in header.value_range)
        return ParsedFile(header, dequantize(ints, lo, hi, header.bits))

    def _split_layer(self, header: Header, payload: bytes) -> tuple[bytes, bytes]:
        """A refined file's payload -> (base payload, refinement layer), once its tables are known to be here."""
        level, base_bytes, check, kind, base_check, on_start = header.layer
        model = self._layer_model(kind, level, FormatError)
        if on_start and not self.bundle.has_learned_start:
            raise FormatError(f"the file's refinement layer refines the start picture, and model {self.bundle.model_hex} "
                              "has no learned start")
        if model.check_for(level) != check:
            raise FormatError(f"the file's {kind} refinement layer has check code {check:04x}, and model "
                              f"{self.bundle.model_hex}'s has {model.check_for(level):04x}")
        if not base_bytes < len(payload):
            raise FormatError(f"the base layer's {base_bytes} bytes leave no refinement layer in a "
                              f"{len(payload)}-byte payload")
        if base_check is not None and base_check != container.base_check(header, payload[:base_bytes]):
            raise FormatError("the refinement layer was made for another base layer (its base check differs)")
        return payload[:base_bytes], payload[base_bytes:]

    def search_steps(self, parsed: ParsedFile, base_only: bool = False, **overrides: Any) -> int:
        """How many search steps (the solver's, then Adam's) decoding this file takes, for progress bars: none
        for a file that decodes from its start picture."""
        if _unsearched(parsed, base_only):
            return 0
        options = search_options(parsed.header, self.bundle.decode, **overrides)
        solver_steps = self.solver.config.steps if self.solver is not None and parsed.header.mode == "ge" else 0
        return solver_steps + options.iters

    def decode_batch(
        self,
        files: Sequence[bytes],
        batch_size: int = 64,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> torch.Tensor:
        """Decode .gec files to (B, 3, S, S) CPU tensors in [-1, 1], searching up to batch_size files at once.

        Files that share a measurement operator and search settings are searched together.
        """
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise OptionError(f"batch size must be a positive integer, got {batch_size!r}")
        return self.decode_parsed([self.parse(data) for data in files], batch_size, progress, **overrides)

    def decode_parsed(self, parsed: Sequence[ParsedFile], batch_size: int = 64, progress: Progress | None = None,
                      base_only: bool = False, **overrides: Any) -> torch.Tensor:
        """decode_batch for files already read with parse(); base_only leaves refinement layers out. A file whose
        base decodes to its start picture, or whose layer refines it, needs no search."""
        out = torch.empty(len(parsed), 3, self.image_size, self.image_size)
        on_start = [i for i, item in enumerate(parsed) if _unsearched(item, base_only)]
        if on_start:
            out[on_start] = self.start_pictures(torch.stack([parsed[i].values for i in on_start]), batch_size)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in sorted(set(range(len(parsed))) - set(on_start)):
            item = parsed[i]
            h = item.header
            operator_key = ("cs", h.count, h.seed) if h.mode == "cs" else ("ge",)
            # A layer adds to the search's 8-bit decode, which a batch's arithmetic can move by one level: such
            # files are searched alone, as their encoder searched them (base_decodes).
            alone = (i,) if item.layer and not base_only else ()
            groups[(operator_key, search_options(h, self.bundle.decode, **overrides), *alone)].append(i)
        if not (overrides.get("iters") is not None and overrides.get("restarts") is not None):
            for operator_key, options, *_ in groups:
                self._check_budget(operator_key, options)
        keys = list(groups)
        for index, ((operator_key, options, *_), members) in enumerate(groups.items()):
            if index % MATRICES_AT_ONCE == 0:  # the next groups' cs matrices, drawn together
                upcoming = keys[index : index + MATRICES_AT_ONCE]
                self._draw_gaussians([key[0][1:] for key in upcoming if key[0][0] == "cs"])
            measure = self.encoder if operator_key[0] == "ge" else self.gaussian(operator_key[1], operator_key[2])
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                targets = torch.stack([parsed[i].values for i in chunk]).to(self.device)
                seeds = [parsed[i].header.seed for i in chunk]
                # The solver learned to search EN's measurements; a cs file gets the plain search.
                solver = self.solver if operator_key[0] == "ge" else None
                try:
                    result = latent_search(self.generator, measure, targets, seeds, options, progress, solver)
                except (RuntimeError, MemoryError) as exc:  # e.g. a caller's restarts=2**40: no memory for it
                    raise DecodeError(f"the search could not run ({str(exc).splitlines()[0][:160] or 'out of memory'})"
                                      ) from None
                if not bool(torch.isfinite(result.images).all()):  # never a silent black image
                    raise DecodeError(f"the search diverged to non-finite pixels (lr {options.lr}, lam {options.lam})")
                out[chunk] = result.images.float().cpu().clamp(-1, 1)
            del measure  # a cs matrix evicted from the cache is freed before the next group draws its own
        for i, item in enumerate(parsed):
            if item.layer and not base_only:
                layer = item.header.layer
                out[i] = self.refined(pixels_to_tensor(tensor_to_pixels(out[i])), item.layer, layer.level, layer.kind)
        if not bool(torch.isfinite(out).all()):  # a start picture or a layer's network gone wrong: never black
            raise DecodeError(f"model {self.bundle.name} decoded to non-finite pixels")
        return out

    def _check_budget(self, operator_key: tuple, options: SearchOptions) -> None:
        """Refuse a search group whose work per face is over the budget (gecodec.search_budget)."""
        ge_pass = self._pass_flops(("ge",))
        own_steps = self.solver.config.steps if self.solver is not None else 0
        own = search_flops(self.bundle.decode, own_steps, ge_pass)
        if operator_key[0] == "ge":
            asked = search_flops(options, own_steps, ge_pass)
        else:
            pixels = 3 * self.image_size**2
            draw = 0 if operator_key[1:] in self._gaussians else DRAW_FLOPS * operator_key[1] * pixels
            asked = search_flops(options, 0, self._pass_flops(operator_key), draw)
        what = (f"a {operator_key[0]} file for model {self.bundle.name} ({options.iters} iterations x "
                f"{options.restarts} restarts)")
        check_search_budget(asked, own, what)

    def _pass_flops(self, operator_key: tuple) -> int:
        """FLOPs of one search pass of one face for a measurement operator: G and EN, or G and a cs matrix."""
        if self._generator_macs is None:
            size, latent = self.image_size, self.generator.config.latent_dim
            self._generator_macs = forward_macs(self.generator, torch.zeros(1, latent, device=self.device))
            self._encoder_macs = forward_macs(self.encoder, torch.zeros(1, 3, size, size, device=self.device))
        if operator_key[0] == "ge":
            return pass_flops(self._generator_macs + self._encoder_macs)
        return pass_flops(self._generator_macs) + gaussian_flops(operator_key[1], 3 * self.image_size**2)

    def refined(self, pixels: torch.Tensor, layer: bytes, level: int, kind: str = "dct") -> torch.Tensor:
        """A base decode as 8-bit pixels (what both sides know exactly) refined by a layer's bytes."""
        if kind == "dct":
            residual = self.bundle.refine.residual(layer, level, self.image_size)
            return (pixels + torch.from_numpy(residual).float()).clamp(-1, 1)
        return self.bundle.refine_learned.refined(pixels, layer, level)

    def decode_image(self, data: bytes, progress: Progress | None = None, size: int | None = None,
                     paste_into: ImageInput | None = None, **overrides: Any) -> Image.Image:
        """Decode one .gec file to its face crop (RGB, or L for a grayscale source) at the model's size, or
        size x size, or pasted into a copy of the photo the file was made from."""
        parsed = self.parse(data)
        photo = open_image(paste_into) if paste_into is not None else None
        return decoded_image(self.decode_parsed([parsed], 1, progress, **overrides)[0], parsed.header, size, photo)


def decoded_image(x: torch.Tensor, header: Header, size: int | None = None, photo: Image.Image | None = None
                  ) -> Image.Image:
    """A decoded (3, S, S) tensor as the image its file gives: the face crop (grey for a grayscale source), at
    size x size if asked, or pasted into the photo it came from (align.frame_decoded)."""
    return frame_decoded(tensor_to_image(x, grayscale=header.grayscale), header, size, photo)


def _unsearched(parsed: ParsedFile, base_only: bool = False) -> bool:
    """Whether a file decodes from its start picture: its base does (version 4), or its layer refines it (unless
    the layer is left out)."""
    return parsed.header.start_picture or (bool(parsed.layer) and parsed.header.layer.on_start and not base_only)


def _float32_range(row: torch.Tensor) -> tuple[float, float]:
    """The (min, max) of a row as float32 values, as the header stores them, so both sides use identical ends."""
    lo, hi = float(np.float32(row.min().item())), float(np.float32(row.max().item()))
    if hi <= lo:
        hi = float(np.nextafter(np.float32(lo), np.float32(np.inf)))
    return lo, hi
