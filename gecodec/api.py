"""The one-call library API: encode an image to bytes, decode bytes to an image, restore a degraded image."""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from PIL import Image
from tqdm import tqdm

from gecodec import container
from gecodec.bundle import Bundle, find_by_id, load_model
from gecodec.codec import Codec, resolve_device
from gecodec.fileio import GecInput, read_gec
from gecodec.image_encoding import encode_image
from gecodec.imageio import ImageInput, open_image
from gecodec.report import EncodeReport
from gecodec.restoration import restore_images
from gecodec.search import Progress, SearchOptions


_codecs: dict[tuple[int, str], Codec] = {}


def get_codec(bundle: Bundle, device: str | torch.device | None = None) -> Codec:
    """A Codec for (bundle, device), created once and then reused. Keyed by the bundle object (load_model gives
    one per file version), not its id: bundles that share a model id may differ in what lies outside it."""
    resolved = resolve_device(device)
    key = (id(bundle), str(resolved))  # the cached Codec keeps its bundle alive, so the id stays unique
    if key not in _codecs:
        _codecs[key] = Codec(bundle, resolved)
    return _codecs[key]


def encode(
    image: ImageInput,
    model: str | os.PathLike | Bundle | None = None,
    bits: int | None = None,
    mode: str = "ge",
    seed: int = 0,
    count: int | None = None,
    device: str | torch.device | None = None,
    quality: int | None = None,
    target_bytes: int | None = None,
    report: bool = False,
    align: str = "auto",
    position: bool = True,
    refine: int | None = None,
) -> bytes | tuple[bytes, EncodeReport]:
    """Compress an image (a path, encoded bytes, a binary stream, a PIL image or a uint8 array of shape (H, W),
    (H, W, 3) or (H, W, 4)) to .gec bytes with a model: a Bundle, a name, an id or a bundle path
    (gecodec.bundle.load_model says which is which; default: the shipped one).

    Rate, at most one of: quality (0..100, entropy-coded; on a model with a quality ladder it spans the
    refinement layers too), target_bytes (the best file that fits), bits (fixed-length values). Default: the
    model's default quality, or 8 bits where it has no entropy model.
    report: also decode the file and return (bytes, EncodeReport): its size, the PSNR it decodes to against
    the face crop it was made from, and the model's validation figure for such files.
    align: "auto" finds the largest face and frames it as the model's training faces are framed (with the
    align extra; otherwise, or with no face, the centre crop and a warning), "none" takes the centre crop,
    "require" raises ImageError when there is no face. An image at the model's size is used as it is.
    position: store where the face lies in the image (about 20 bytes), for decode(..., paste_into=image).
    refine: add a refinement layer of this level (0 to 15) to the default base, past what the generator can
    draw (target_bytes and the qualities of a ladder add layers by themselves).
    """
    bundle = model if isinstance(model, Bundle) else load_model(model)
    data, checked = encode_image(get_codec(bundle, device), image, report, align, position, bits=bits, mode=mode,
                                 seed=seed, count=count, quality=quality, target_bytes=target_bytes, refine=refine)
    return (data, checked) if report else data


def decode(data: GecInput, device: str | torch.device | None = None, progress: bool | Progress = False,
           size: int | None = None, paste_into: ImageInput | None = None, **search_options: Any) -> Image.Image:
    """Decompress .gec bytes (or a .gec path) to the face crop it holds; the model is found from the file's id.

    The crop is RGB (L for a grayscale source) at the model's size, or size x size. paste_into: the image the
    file was made from (a path or PIL image of the same size); the result is a copy of it with the decoded
    face put back where it was found. search_options may also hold base_only=True: leave out a refinement
    layer.
    progress: True for a progress bar of the search on stderr, or a callable given the number of steps done
    after each step (codec.search_steps(codec.parse(data)) is the total). search_options: iters, restarts,
    lam, lr (defaults: the model's schedule, then the file's hints).
    """
    raw = read_gec(data)
    header = container.read_header(raw)
    codec = get_codec(find_by_id(header.model_id), device)
    framing = {"size": size, "paste_into": paste_into}
    if callable(progress):
        return codec.decode_image(raw, progress, **framing, **search_options)
    steps = codec.search_steps(codec.parse(raw), **search_options) if progress else 0
    if not steps:  # a layered file takes no search, and decodes in milliseconds: no bar
        return codec.decode_image(raw, **framing, **search_options)
    with tqdm(total=steps, unit="iter", desc="decode", file=sys.stderr) as bar:
        return codec.decode_image(raw, bar.update, **framing, **search_options)


def restore(
    image: ImageInput,
    task: str,
    model: str | os.PathLike | Bundle | None = None,
    method: str = "ge",
    device: str | torch.device | None = None,
    seed: int = 0,
    **params: Any,
) -> Image.Image:
    """Restore a degraded image (path or PIL image) with a model (default: the shipped one).

    task: denoise, deblur, superres (the image is the low-resolution one; the result is factor times larger)
    or inpaint. method: ge (the GE paper's encoder-space objective) or csgm (Bora et al.'s pixel-space one).
    params: the task's (blur_sigma, factor, box, mask: see gecodec.restoration.TaskParams) and the search's
    (iters, restarts, lam, lr). seed: the search's restart points.
    """
    search = {k: params.pop(k) for k in ("iters", "restarts", "lam", "lr") if k in params}
    bundle = model if isinstance(model, Bundle) else load_model(model)
    codec = get_codec(bundle, device)
    return restore_images(codec, [open_image(image)], task, method, seed, SearchOptions(**search), **params)[0]
