"""Pick a bundle's quality ladder (gecodec/ladder.py) on training faces and store it in the bundle.

    python -m gecodec.train.quality_ladder --data ../shared/data/celeba64/train \\
        --bundle gecodec/weights/celeba64-default.safetensors

Every base quality from 0 to MAX_BASE_QUALITY alone, and those of LAYERED_BASES under each level of each
refinement layer the bundle has (DCT, learned), is coded and decoded as a receiver would on LADDER_IMAGES training
faces (past the REFINE_IMAGES that the refinement tables were fitted on). On a model with a learned start the
layers refine the start picture (formats/gec.md): 0.01 to 0.21 dB below a layer on the search's decode
(bench.refine_learned), and neither side searches, so every quality encodes and decodes in milliseconds.
On a model with a learned start and a transform model, each base alone is also measured decoded to its start
picture (a version-4 file, of the same bytes): it is 0.13 to 0.36 dB above the search's decode on faces64-default
and about level with it on celeba64-default, and whichever is higher is the one the ladder can hold.
The candidates that beat every smaller one by MARGIN_DB of mean PSNR form a chain, which holds the default
quality's base alone; quality 0 is the chain's point nearest LOWEST_BYTES, quality 100 its largest, and the
qualities in between follow the chain as evenly in log-bytes as they can, one point each, so that bytes and PSNR
rise at every step. The model id does not change.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache, partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gecodec.bundle import default_bases, load_bundle, update_bundle
from gecodec.codec import Codec
from gecodec.container import with_start_picture
from gecodec.entropy import QUALITIES
from gecodec.fileio import write_bytes_atomic
from gecodec.ladder import Rung
from gecodec.metrics import psnr_8bit
from gecodec.train.data import bundle_step_parser, to_float
from gecodec.train.photos import training_faces
from gecodec.train.refine_tables import REFINE_IMAGES

LADDER_IMAGES = 128
MAX_BASE_QUALITY = 70  # finer bases gain under 0.1 dB (the generator's floor): a layer does better
# The base qualities that layers go on: every 5th (4 times less to measure than all), and every one from 35 to 45,
# where the rising chain's layered rungs sit (bases 35 to 55 when every 5th is measured), so that it holds enough.
LAYERED_BASES = frozenset({*range(0, MAX_BASE_QUALITY + 1, 5), *range(35, 46)})
# Layers on the start picture go on two bases only, so that --target-bytes makes at most two start pictures and
# analyses (each a pass of G and of the layer's networks); two give the ladder rungs enough between the levels.
START_LAYERED_BASES = frozenset({35, 50})
LOWEST_BYTES = 22  # about where quality 0 lies (20 dB): smaller files hardly hold a face
MARGIN_DB = 0.01  # each rung's mean PSNR beats the one below by at least this, on the faces measured


def candidates(layer_levels: dict[str, range], on_start: bool, start_bases: bool = False,
               max_base_quality: int = MAX_BASE_QUALITY) -> list[Rung]:
    """Every base quality up to max_base_quality alone (with ``start_bases`` also decoded to its start picture),
    and those of LAYERED_BASES under each level of each layer kind (Bundle.layer_levels), or with ``on_start``
    those of START_LAYERED_BASES with layers on the start picture."""
    layers = [(level, kind) for kind, levels in layer_levels.items() for level in levels]
    layered_bases = START_LAYERED_BASES if on_start else LAYERED_BASES
    alone = [False, True] if start_bases else [False]
    return [rung for quality in range(max_base_quality + 1)
            for rung in (*(Rung(quality, on_start=start) for start in alone),
                         *(Rung(quality, level, kind, on_start) for level, kind in layers if quality in layered_bases))]


def measure_rungs(codec: Codec, faces: torch.Tensor, rungs: list[Rung]) -> list[dict]:
    """Mean bytes and PSNR of each rung's files of (N, 3, S, S) faces, decoded as a receiver decodes them.
    ``codec`` holds a model with refinement tables and no ladder, so that its qualities are base qualities."""
    rungs_of: dict[int, list[Rung]] = defaultdict(list)
    for rung in rungs:
        rungs_of[rung.base_quality].append(rung)
    measured = {}
    for quality, on_base in tqdm(rungs_of.items(), desc="base qualities", unit="quality"):
        bases = codec.encode_batch(faces, quality=quality)
        pictures = cache(partial(codec.layer_bases, bases))  # on_start -> what its layers refine, made once
        for rung in on_base:
            if rung.level is None:  # a base alone, decoded as `gec decode` decodes it: searched in batches
                files = [with_start_picture(base) for base in bases] if rung.on_start else bases
                decoded = codec.decode_batch(files)
            else:
                files, decoded = codec.layered(bases, faces, pictures(rung.on_start), rung.level, rung.kind,
                                               rung.on_start)
            measured[rung] = _point(rung, files, decoded, faces)
    return [measured[rung] for rung in rungs]


def _point(rung: Rung, files: list[bytes], decoded: torch.Tensor, faces: torch.Tensor) -> dict:
    return {"base_quality": rung.base_quality, "level": rung.level, "kind": rung.kind, "on_start": rung.on_start,
            "bytes": float(np.mean([len(f) for f in files])), "psnr": float(psnr_8bit(decoded, faces).mean())}


def _rung(point: dict) -> Rung:
    return Rung(point["base_quality"], point["level"], point.get("kind", "dct"), point.get("on_start", False))


def rising_chain(points: list[dict], margin_db: float) -> list[dict]:
    """Points in increasing bytes, each kept when it beats the last kept one by margin_db."""
    chain: list[dict] = []
    for point in sorted(points, key=lambda p: (p["bytes"], -p["psnr"])):
        if not chain or point["psnr"] >= chain[-1]["psnr"] + margin_db:
            chain.append(point)
    return chain


def pick_ladder(points: list[dict], default: tuple[Rung, ...], lowest_bytes: float = LOWEST_BYTES,
                margin_db: float = MARGIN_DB) -> list[dict]:
    """QUALITIES points, one per quality, rising in bytes and by margin_db in PSNR, with the highest of the
    ``default`` rungs measured among them."""
    anchor = max((p for p in points if _rung(p) in default), key=lambda p: p["psnr"])
    chain = rising_chain([p for p in points if p["bytes"] < anchor["bytes"]
                          and p["psnr"] <= anchor["psnr"] - margin_db], margin_db)
    chain += rising_chain([anchor] + [p for p in points if p["bytes"] > anchor["bytes"]
                                      and p["psnr"] >= anchor["psnr"] + margin_db], margin_db)
    logs = np.log([p["bytes"] for p in chain])
    chain = chain[int(np.abs(logs - np.log(lowest_bytes)).argmin()) :]
    if len(chain) < QUALITIES:
        raise ValueError(f"only {len(chain)} candidates rise by {margin_db} dB from {lowest_bytes} bytes: "
                         f"{QUALITIES} qualities need as many")
    return [chain[j] for j in _even_picks(np.log([p["bytes"] for p in chain]), chain.index(anchor))]


def _even_picks(logs: np.ndarray, anchor: int) -> list[int]:
    """QUALITIES increasing indices into ``logs`` (increasing), from the first to the last and through
    ``anchor``, closest in total to an even spread: for each quality the anchor may take, dynamic programming
    over (quality, index); the best of those."""
    n = len(logs)
    even = np.linspace(logs[0], logs[-1], QUALITIES)
    best: tuple[float, list[int]] = (np.inf, [])
    for anchor_quality in range(max(1, QUALITIES - n + anchor), min(anchor, QUALITIES - 2) + 1):
        cost = np.abs(even[:, None] - logs[None, :])
        for quality, index in ((0, 0), (QUALITIES - 1, n - 1), (anchor_quality, anchor)):
            cost[quality, np.arange(n) != index] = np.inf
        total, came_from = cost[0].copy(), np.zeros((QUALITIES, n), dtype=np.int64)
        for quality in range(1, QUALITIES):
            # the best total of the qualities below when quality - 1 takes an index under j
            best_below = np.concatenate([[np.inf], np.minimum.accumulate(total)[:-1]])
            total, came_from[quality] = cost[quality] + best_below, np.concatenate([[0], _running_argmin(total)[:-1]])
        if total[-1] < best[0]:
            picks = [n - 1]
            for quality in range(QUALITIES - 1, 0, -1):
                picks.append(int(came_from[quality, picks[-1]]))
            best = (float(total[-1]), picks[::-1])
    if not best[1]:
        raise ValueError(f"no increasing choice of {QUALITIES} of {n} candidates passes through the default")
    return best[1]


def _running_argmin(values: np.ndarray) -> np.ndarray:
    """For each j, the index of the smallest of values[: j + 1] (the first one on ties)."""
    best = np.zeros(len(values), dtype=np.int64)
    for j in range(1, len(values)):
        best[j] = j if values[j] < values[best[j - 1]] else best[j - 1]
    return best


def store_ladder(path: Path, faces: torch.Tensor, measured: Path | None = None) -> dict:
    """Measure the candidates on (N, 3, S, S) training faces in [-1, 1], pick the ladder and store it.
    ``measured`` names a JSON file that keeps the measurements: those it holds are reused, and the candidates
    it lacks are measured and added to it. It names the base coder they were made with (the transform id of
    version-3 files, else the model id), and one made with another is refused."""
    bundle = load_bundle(path)
    bundle.ladder = None
    codec = Codec(bundle, "cpu")
    base = f"{bundle.transform_id:08x}" if bundle.transform is not None else bundle.model_hex
    kept = json.loads(measured.read_text()) if measured is not None and measured.exists() else {"base": base}
    if not isinstance(kept, dict) or kept.get("base") != base:
        raise ValueError(f"{measured} holds measurements made with another base coder than {base}: name a new file")
    points = kept.get("points", [])
    known = {_rung(p) for p in points}
    start = codec.bundle.has_learned_start
    wanted = candidates(codec.bundle.layer_levels, start, start and bundle.transform is not None)
    missing = [rung for rung in wanted if rung not in known]
    if missing:
        points += measure_rungs(codec, faces, missing)
        if measured is not None:
            write_bytes_atomic(measured, json.dumps({"base": base, "points": points}).encode(), force=True)
    wanted_set = set(wanted)
    default = default_bases(bundle.base_coder.default_quality)
    rungs = pick_ladder([p for p in points if _rung(p) in wanted_set], default)
    record = {"faces": len(faces), "margin_db": MARGIN_DB, "made_by": "python -m gecodec.train.quality_ladder",
              "rungs": [{"quality": q, **{k: round(v, 3) if isinstance(v, float) else v for k, v in p.items()}}
                        for q, p in enumerate(rungs)]}
    ladder = tuple(_rung(p) for p in rungs)
    update_bundle(path, ladder=ladder, card={**bundle.card, "quality_ladder": record})
    return record


def main(argv: list[str] | None = None) -> None:
    parser = bundle_step_parser(__doc__, "ladder", LADDER_IMAGES, "training faces to measure on", photos=True)
    parser.add_argument("--measured", type=Path, default=None,
                        help="JSON file of the candidates' measurements: those it holds are reused, the rest added")
    args = parser.parse_args(argv)
    size = load_bundle(args.bundle).image_size
    faces = training_faces(args.data, args.photos, size, REFINE_IMAGES + args.images)[REFINE_IMAGES:]
    try:
        record = store_ladder(args.bundle, to_float(faces), args.measured)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps({k: v for k, v in record.items() if k != "rungs"}))
    for row in record["rungs"][::10]:
        print(row)


if __name__ == "__main__":
    main()
