"""Training faces from photos, framed as a user's photo is: through the codec's own face finder
(gecodec.align.frame_face, the code that `gec encode` runs), split into training and validation by person.

    python -m gecodec.train.photos --data ../shared/data/lfw/train --bundle celeba64-default --out runs/lfw64
    python -m gecodec.train.photos --data ../shared/data/lfw/train --size 128 --out runs/lfw128   # twice the side

A photo's person is its folder (LFW's layout: PERSON/PERSON_NNNN.jpg; a photo at the top level is its own
person). A person goes to validation when a hash of the name falls in the first --val-share of its range, so
the split never depends on the order of files or on random state, and no person is on both sides. Photos whose
face the finder misses are left out (as `--align require` would refuse them) and counted.

Writes OUT/train.npy and OUT/val.npy (uint8, N x 3 x S x S), OUT/framing.json (each kept photo's name, split and
placement, and the counts) and nothing else; OUT must not hold an earlier framing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gecodec.align import CropGeometry, Placement, frame_face
from gecodec.bundle import load_model
from gecodec.errors import ImageError, OutputError
from gecodec.fileio import write_bytes_atomic
from gecodec.train.data import image_source, load_images

VAL_SHARE = 0.1


def person_of(name: str) -> str:
    """The person a photo shows: its folder, or the photo itself at the top level."""
    parts = Path(name).parts
    return parts[-2] if len(parts) > 1 else Path(name).stem


def is_validation(person: str, share: float = VAL_SHARE) -> bool:
    """Whether a person is held out: the first 8 bytes of SHA-256 of the name, as a fraction, below share."""
    digest = hashlib.sha256(person.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass(frozen=True)
class FramedPhotos:
    """Face crops framed by the finder, uint8 (N, 3, S, S), with each one's name and placement in its photo."""

    faces: torch.Tensor
    names: list[str]
    placements: list[Placement]
    sizes: list[tuple[int, int]]  # each photo's width and height
    missed: list[str]  # photos whose face the finder did not find


def frame_photos(root: str | Path, geometry: CropGeometry, size: int, limit: int | None = None) -> FramedPhotos:
    """Every photo under root (a folder or an archive) framed as `gec encode --align require` frames it."""
    names, open_one = image_source(root)
    names = names[:limit]
    if not names:
        raise ImageError(f"{root}: no images found")
    faces = np.empty((len(names), 3, size, size), dtype=np.uint8)
    kept: list[str] = []
    placements: list[Placement] = []
    sizes: list[tuple[int, int]] = []
    missed: list[str] = []
    for name in tqdm(names, desc=f"framing {Path(root).name}", unit="photo", mininterval=5):
        try:
            photo = open_one(name)
            framed = frame_face(photo, geometry, size, "require")
        except ImageError:
            missed.append(name)
            continue
        faces[len(kept)] = np.asarray(framed.face).transpose(2, 0, 1)  # the crop gec encode would code
        kept.append(name)
        placements.append(framed.placement)
        sizes.append(photo.size)
    if not kept:
        raise ImageError(f"{root}: no usable faces: the face finder found none in its {len(names)} images")
    return FramedPhotos(torch.from_numpy(faces[: len(kept)]), kept, placements, sizes, missed)


def split_by_person(framed: FramedPhotos, share: float = VAL_SHARE) -> tuple[list[int], list[int]]:
    """Indices of the training and the validation photos."""
    held = [is_validation(person_of(name), share) for name in framed.names]
    return [i for i, h in enumerate(held) if not h], [i for i, h in enumerate(held) if h]


def write_framing(framed: FramedPhotos, out: Path, share: float = VAL_SHARE) -> dict:
    """Write train.npy, val.npy and framing.json to out; returns the summary."""
    train, val = split_by_person(framed, share)
    if not train or not val:
        raise ImageError(f"{len(framed.names)} framed photos give an empty {'training' if not train else 'validation'} "
                         f"side at a validation share of {share}")
    out.mkdir(parents=True, exist_ok=True)
    for split, indices in (("train", train), ("val", val)):
        path = out / f"{split}.npy"
        with open(path.with_suffix(".tmp"), "wb") as handle:
            np.save(handle, framed.faces[indices].numpy())
        path.with_suffix(".tmp").replace(path)
    people = {split: len({person_of(framed.names[i]) for i in indices}) for split, indices in (("train", train),
                                                                                              ("val", val))}
    summary = {"photos": len(framed.names) + len(framed.missed), "framed": len(framed.names),
               "missed": len(framed.missed), "train": len(train), "val": len(val), "people": people,
               "val_share": share, "split": "by person: sha256(name)[:8] / 2^64 < val_share"}
    records = [{"name": framed.names[i], "split": split, "size": list(framed.sizes[i]),
                "position": list(framed.placements[i].position(*framed.sizes[i]))}
               for split, indices in (("train", train), ("val", val)) for i in indices]
    document = {**summary, "missed_photos": framed.missed, "photos_kept": records}
    write_bytes_atomic(out / "framing.json", json.dumps(document, indent=1).encode())
    return summary


def load_framed(folder: str | Path, split: str) -> torch.Tensor:
    """A framing's uint8 faces (N, 3, S, S) for split 'train' or 'val'."""
    path = Path(folder) / f"{split}.npy"
    if not path.is_file():
        raise ImageError(f"{path}: no framed faces (make them with python -m gecodec.train.photos)")
    faces = np.load(path)
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.dtype != np.uint8 or not len(faces):
        raise ImageError(f"{path}: not a non-empty uint8 array of N x 3 x S x S faces")
    return torch.from_numpy(faces)


def training_faces(data: str | Path | None, photos: str | Path | None, size: int, limit: int) -> torch.Tensor:
    """The first ``limit`` uint8 training faces of the folder ``data``; with a framing folder ``photos``, its
    training faces and ``data``'s in turn, so that every prefix is half of each (the bundle steps of a model
    trained on both slice one such sequence, each its own part); without ``data``, the framing's alone."""
    if photos is None:
        return load_images(data, size, limit=limit)
    framed = load_framed(photos, "train")[: limit if data is None else limit // 2]
    if data is None:
        return framed
    if framed.shape[-1] != size:  # alternate needs faces of one size
        raise ImageError(f"{photos}: its faces are {framed.shape[-1]} pixels, the model's {size}")
    return alternate(load_images(data, size, limit=limit - len(framed)), framed)


def alternate(faces: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
    """Faces and photos in turn, then the rest of the longer one."""
    pairs = min(len(faces), len(photos))
    alternating = torch.stack([faces[:pairs], photos[:pairs]], dim=1).flatten(0, 1)
    return torch.cat([alternating, faces[pairs:], photos[pairs:]])


def framed_records(folder: str | Path, split: str) -> list[dict]:
    """framing.json's records of a split, in the order of its faces: name, photo size and position (container
    key 13: the photo's size and the face's square in it)."""
    path = Path(folder) / "framing.json"
    try:
        records = json.loads(path.read_text())["photos_kept"]
    except (OSError, ValueError, KeyError) as exc:
        raise ImageError(f"{path}: unreadable framing ({exc.__class__.__name__})") from None
    return [record for record in records if record["split"] == split]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder (or archive) of photos, a folder per person")
    parser.add_argument("--bundle", default="celeba64-default", help="the model whose framing to use")
    parser.add_argument("--out", type=Path, required=True, help="folder for train.npy, val.npy and framing.json")
    parser.add_argument("--val-share", type=float, default=VAL_SHARE, help="share of the people held out")
    parser.add_argument("--limit", type=int, default=None, help="frame only the first N photos")
    parser.add_argument("--size", type=int, default=None,
                        help="crop side in pixels (default: the model's), the model's geometry scaled to it")
    args = parser.parse_args(argv)
    if (args.out / "framing.json").exists():
        raise SystemExit(f"{OutputError.__name__}: {args.out} already holds a framing")
    bundle = load_model(args.bundle)
    if bundle.crop is None:
        raise SystemExit(f"{args.bundle}: the model has no face geometry to frame photos with")
    try:
        size = args.size or bundle.image_size
        geometry = bundle.crop.scaled(size / bundle.image_size)
        summary = write_framing(frame_photos(args.data, geometry, size, args.limit), args.out, args.val_share)
    except ImageError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
