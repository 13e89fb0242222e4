"""A learned refinement layer: the integers of gecodec/models/refiner.py's latent, coded with static tables.

The network was trained at a few rates, one gain vector each; the layer's levels are those rates and
SUBLEVELS - 1 more between each two, at interpolated gains, so that a quality ladder can step finely. Coarse
levels -1, -2, .. go below the lowest trained rate, on gains extrapolated from the first two: a few bytes that
lift a base decode by tenths of a dB (bench/results/residual/README.md), where the trained levels' ~80 bytes
would double a small file. At level L the encoder rounds the refiner's latent of (x, x_base) at rate
L / SUBLEVELS to integers, clips them to -RADIUS .. RADIUS, and codes the integers of each latent channel c with
table (L, c) (for L < 0, coarse table (-L - 1, c)). The tables are
integers fitted on training faces and stored in the bundle, so a layer's integers decode identically on every
platform whatever the networks compute there; only the picture drawn from them follows the device's floats,
as the base decode does. (A prior predicted from x_base codes 4 to 5% shorter, but its tables would come from
floats computed at run time: bench/results/residual/README.md.) The layer's bytes are the channels'
integers, channel 0 first, each in raster order, as one ANS stream (entropy.ans_bytes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np
import torch

from gecodec.entropy import TABLE_TOTAL, ans_bytes, ans_decode, categorical, integer_table
from gecodec.models.refiner import ConditionalRefiner, RefinerConfig

PREFIX = "refine.learned."  # its tensors' names in a bundle (under catalog.REFINE_PREFIX: not in the model id)
RADIUS = 64  # the coded integers' range; the latent rarely leaves it
SUBLEVELS = 3  # layer levels per trained rate
COARSE_LEVELS = 9  # levels below the lowest trained rate (down to rate -3), when a bundle has their tables
FIT_BATCH = 256


@dataclass(frozen=True, eq=False)
class LearnedRefinement:
    network: ConditionalRefiner  # on the CPU, in eval mode
    tables: np.ndarray  # (levels, latent, 2 RADIUS + 1) int32: each row sums to TABLE_TOTAL, each entry at least 1
    coarse: np.ndarray | None = None  # (coarse levels, latent, 2 RADIUS + 1), as tables: levels -1, -2, ..

    def __post_init__(self) -> None:
        shape = tables_shape(self.network.config)
        parts = [("", self.tables, shape)]
        if self.coarse is not None:
            parts.append(("coarse ", self.coarse, (len(self.coarse), *shape[1:])))
        for name, tables, wanted in parts:
            if tables.shape != wanted:
                raise ValueError(f"learned refinement {name}tables have shape {tables.shape}, the network needs {wanted}")
            if tables.min() < 1 or not (tables.sum(-1, dtype=np.int64) == TABLE_TOTAL).all():
                raise ValueError(f"a learned refinement {name}table does not sum to {TABLE_TOTAL} with every entry "
                                 "at least 1")

    @property
    def levels(self) -> range:
        """Its levels, coarsest first: the coarse ones (negative), then the trained rates' from 0."""
        return range(-(0 if self.coarse is None else len(self.coarse)), len(self.tables))

    def check_for(self, level: int) -> int:
        """The check code that a file with a layer at ``level`` carries."""
        return self.check_code if level >= 0 else self.coarse_check_code

    @cached_property
    def check_code(self) -> int:
        """16 bits of the SHA-256 of the tables and of the weights in half precision (as bundles store them)."""
        return int.from_bytes(self._sha().digest()[:2], "big")

    @cached_property
    def coarse_check_code(self) -> int:
        """As check_code, with the coarse tables hashed after the weights: the code of the coarse levels."""
        sha = self._sha()
        sha.update(np.ascontiguousarray(self.coarse, np.int32).tobytes())
        return int.from_bytes(sha.digest()[:2], "big")

    def _sha(self) -> hashlib._Hash:
        sha = hashlib.sha256(np.ascontiguousarray(self.tables, np.int32).tobytes())
        for name, value in sorted(self.network.state_dict().items()):
            sha.update(name.encode() + value.detach().half().numpy().tobytes())
        return sha

    @cached_property
    def _models(self) -> dict[int, list[constriction.stream.model.Categorical]]:
        coarse = [] if self.coarse is None else self.coarse
        return {level: [categorical(row) for row in (self.tables[level] if level >= 0 else coarse[-level - 1])]
                for level in self.levels}

    def code(self, images: torch.Tensor, pixels: torch.Tensor, level: int) -> list[bytes]:
        """(B, 3, S, S) faces and their base decodes as 8-bit pixels, in [-1, 1] -> each face's layer bytes."""
        return self.code_centred(self.centred(images, pixels), level)

    def centred(self, images: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """code's first half, the same at every level: the network's latent before a level's gain. A quality
        search analyses each base once and codes it at several levels (code_centred)."""
        return centred_latent(self.network, images, pixels)

    def code_centred(self, centred: torch.Tensor, level: int) -> list[bytes]:
        """The layer bytes of each face at ``level``, from its centred latent."""
        return [self.encode(k, level) for k in scaled_integers(self.network, centred, level).numpy()]

    def encode(self, integers: np.ndarray, level: int) -> bytes:
        coder = constriction.stream.stack.AnsCoder()
        for channel in reversed(range(len(integers))):  # a stack: the decoder pops channel 0 first
            coder.encode_reverse((integers[channel].ravel() + RADIUS).astype(np.int32), self._models[level][channel])
        return ans_bytes(coder)

    def decode(self, payload: bytes, level: int, side: int) -> np.ndarray:
        """Bytes -> the (latent, side, side) integers; FormatError unless they use up the payload exactly."""
        def pop(coder: constriction.stream.stack.AnsCoder) -> np.ndarray:
            return np.stack([coder.decode(model, side * side).reshape(side, side) for model in self._models[level]])

        return ans_decode(payload, "refinement payload", "latent", pop).astype(np.int64) - RADIUS

    def refined(self, pixels: torch.Tensor, payload: bytes, level: int) -> torch.Tensor:
        """A base decode as 8-bit pixels (3, S, S) and the layer's bytes -> the refined face in [-1, 1]."""
        integers = torch.from_numpy(self.decode(payload, level, pixels.shape[-1] // 8)).float()
        with torch.no_grad():
            given = self.network.conditioning(pixels[None], level / SUBLEVELS)
            return self.network.refine(integers[None], given)[0].clamp(-1, 1)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"{PREFIX}net.{k}": v.detach() for k, v in self.network.state_dict().items()}
        tensors[f"{PREFIX}tables"] = torch.from_numpy(np.ascontiguousarray(self.tables, np.int32))
        if self.coarse is not None:
            tensors[f"{PREFIX}coarse_tables"] = torch.from_numpy(np.ascontiguousarray(self.coarse, np.int32))
        return tensors

    @classmethod
    def from_tensors(cls, network: ConditionalRefiner, tensors: dict[str, torch.Tensor]) -> LearnedRefinement:
        """The layer of a loaded network and a bundle's tensors (to_tensors' names)."""
        coarse = tensors.get(f"{PREFIX}coarse_tables")
        return cls(network, tensors[f"{PREFIX}tables"].numpy(), None if coarse is None else coarse.numpy())


def tables_shape(config: RefinerConfig) -> tuple[int, int, int]:
    """(layer levels, latent channels, symbols) of a network's tables."""
    return (config.levels - 1) * SUBLEVELS + 1, config.latent, 2 * RADIUS + 1


def latent_integers(network: ConditionalRefiner, images: torch.Tensor, pixels: torch.Tensor, level: int
                    ) -> torch.Tensor:
    """(B, 3, S, S) faces and their base decodes as 8-bit pixels, in [-1, 1] -> their (B, latent, S/8, S/8)
    integers at a layer level."""
    return scaled_integers(network, centred_latent(network, images, pixels), level)


def centred_latent(network: ConditionalRefiner, images: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """The network's latent of faces past their base decodes before a level's gain (ConditionalRefiner.centred)."""
    with torch.no_grad():
        return network.centred(images, network.conditioning(pixels, 0.0))


def scaled_integers(network: ConditionalRefiner, centred: torch.Tensor, level: int) -> torch.Tensor:
    """A centred latent (ConditionalRefiner.centred) -> the integers a file codes at a layer level."""
    with torch.no_grad():
        return (centred * network.gain(level / SUBLEVELS)).round().clamp(-RADIUS, RADIUS).to(torch.int64)


def fit_learned_refinement(trained: ConditionalRefiner, faces: torch.Tensor, pixels: torch.Tensor
                           ) -> LearnedRefinement:
    """Tables for a trained network, from the integers that (N, 3, S, S) training faces and their base decodes
    (8-bit pixels, in [-1, 1]) give at each level. The network is rounded to half precision first, as a bundle
    stores it, so that the tables fit what decoders run."""
    network = ConditionalRefiner(trained.config)
    network.load_state_dict({k: v.detach().cpu().half().float() for k, v in trained.state_dict().items()})
    network.eval().requires_grad_(False)
    return LearnedRefinement(network, _fit_tables(network, faces, pixels, range(tables_shape(network.config)[0])))


def with_coarse_levels(layer: LearnedRefinement, faces: torch.Tensor, pixels: torch.Tensor,
                       count: int = COARSE_LEVELS) -> LearnedRefinement:
    """The layer with tables for ``count`` coarse levels, fitted as fit_learned_refinement fits the others; its
    trained levels, and so their check code, stay as they are."""
    coarse = _fit_tables(layer.network, faces, pixels, range(-1, -count - 1, -1))
    return LearnedRefinement(layer.network, layer.tables, coarse)


def _fit_tables(network: ConditionalRefiner, faces: torch.Tensor, pixels: torch.Tensor, levels: range) -> np.ndarray:
    """(len(levels), latent, symbols) tables of the integers that faces and their base decodes give at each level."""
    _, latent, symbols = tables_shape(network.config)
    tables = []
    for level in levels:
        counts = np.zeros((latent, symbols))
        for start in range(0, len(faces), FIT_BATCH):
            chunk = slice(start, start + FIT_BATCH)
            symbols_of = (latent_integers(network, faces[chunk], pixels[chunk], level) + RADIUS).numpy()
            for channel in range(latent):
                counts[channel] += np.bincount(symbols_of[:, channel].ravel(), minlength=symbols)
        tables.append([integer_table(row + 0.5) for row in counts])  # + 0.5: no symbol is impossible
    return np.array(tables, dtype=np.int32)
