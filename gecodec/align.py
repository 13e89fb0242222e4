"""Faces in photos: find the largest face, frame it the way the model's training crops are framed, and put a
decoded face back into the photo.

Coordinates are continuous pixel coordinates (pixel i covers [i, i + 1)), as Pillow's resize and transform
use them. A crop is a square of the photo, possibly rotated: a Placement. The face detector and landmarks
are dlib's (the ``align`` extra); everything else is Pillow and numpy, so decoding never needs dlib.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gecodec import container
from gecodec.container import Header
from gecodec.errors import ImageError, MissingExtraError, OptionError
from gecodec.imageio import centre_crop
from gecodec.options import ALIGN_MODES, MAX_OUTPUT_SIDE, MIN_OUTPUT_SIDE

DETECT_SIDE = 1024  # photos are searched for faces at most this large: HOG finds faces of about 80 px and up
RETRY_ANGLES = (-30.0, 30.0)  # when no upright face is found, the photo is searched again turned this far
FEATHER = 0.06  # the pasted face fades into the photo over this share of its side
NO_DETECTOR = "face alignment needs pip install 'gecodec[align]'; using the centre crop"  # the same for every photo


Point = tuple[float, float]


@dataclass(frozen=True)
class CropGeometry:
    """Where the training crops have their eyes (model pixels): the image-left eye, then the image-right one."""

    left_eye: Point
    right_eye: Point

    def to_dict(self) -> dict[str, Any]:
        return {"eyes": [list(self.left_eye), list(self.right_eye)]}

    def scaled(self, factor: float) -> CropGeometry:
        """The same framing for crops ``factor`` times the side: a face framed at 128 as at 64, twice as large."""
        return CropGeometry(*(tuple(v * factor for v in eye) for eye in (self.left_eye, self.right_eye)))

    @classmethod
    def from_dict(cls, data: Any, size: int) -> CropGeometry:
        """Read a bundle's ``crop`` config, refusing eyes outside the image or in the wrong order."""
        try:
            (lx, ly), (rx, ry) = ((float(v) for v in eye) for eye in data["eyes"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"crop geometry {data!r} is not {{'eyes': [[x, y], [x, y]]}}") from exc
        if not all(0.0 <= v <= size for v in (lx, ly, rx, ry)) or not lx < rx:
            raise ValueError(f"crop geometry eyes {data['eyes']!r} are not two points inside the image, left first")
        return cls((lx, ly), (rx, ry))


@dataclass(frozen=True)
class Placement:
    """A square of a photo: its centre, side and rotation (degrees; the crop's rows run along (cos, sin))."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    @classmethod
    def centre_square(cls, width: int, height: int) -> Placement:
        """The largest centred square (imageio.center_square), the crop of an image that was not aligned."""
        side = min(width, height)
        return cls((width - side) // 2 + side / 2, (height - side) // 2 + side / 2, float(side))

    @classmethod
    def from_stored(cls, values: tuple[int, int, int, int]) -> Placement:
        """A crop as files before key 13 stored it: whole pixels, and the angle in tenths of a degree."""
        cx, cy, side, tenths = values
        return cls(float(cx), float(cy), float(side), tenths / 10)

    def position(self, width: int, height: int) -> tuple[int, int, int, int, int, int]:
        """The placement in a width x height photo as a file stores it (container.position_of)."""
        return container.position_of(width, height, self.cx, self.cy, self.side, self.angle)

    @classmethod
    def from_position(cls, position: tuple[int, int, int, int, int, int]) -> Placement:
        return cls(*container.position_square(position))

    def to_photo(self, size: int) -> tuple[float, ...]:
        """Pillow's affine coefficients from a size x size crop's pixels to the photo's."""
        k, a = self.side / size, math.radians(self.angle)
        cos, sin, half = k * math.cos(a), k * math.sin(a), size / 2
        return cos, -sin, self.cx - half * (cos - sin), sin, cos, self.cy - half * (sin + cos)

    def to_crop(self, size: int) -> tuple[float, ...]:
        """Pillow's affine coefficients from the photo's pixels to a size x size crop's."""
        k, a = size / self.side, math.radians(self.angle)
        cos, sin, half = k * math.cos(a), k * math.sin(a), size / 2
        return cos, sin, half - cos * self.cx - sin * self.cy, -sin, cos, half + sin * self.cx - cos * self.cy


def placement_from_eyes(left: Point, right: Point, geometry: CropGeometry, size: int) -> Placement:
    """The similarity transform that puts a photo's eyes where the training crops have theirs."""
    crop_dx, crop_dy = geometry.right_eye[0] - geometry.left_eye[0], geometry.right_eye[1] - geometry.left_eye[1]
    photo_dx, photo_dy = right[0] - left[0], right[1] - left[1]
    scale = math.hypot(photo_dx, photo_dy) / math.hypot(crop_dx, crop_dy)
    angle = math.atan2(photo_dy, photo_dx) - math.atan2(crop_dy, crop_dx)
    # The crop's centre, seen from the midpoint of its eyes, turned and scaled into the photo.
    ox = size / 2 - (geometry.left_eye[0] + geometry.right_eye[0]) / 2
    oy = size / 2 - (geometry.left_eye[1] + geometry.right_eye[1]) / 2
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    cx = (left[0] + right[0]) / 2 + cos * ox - sin * oy
    cy = (left[1] + right[1]) / 2 + sin * ox + cos * oy
    return Placement(cx, cy, scale * size, math.degrees(angle))


def crop(photo: Image.Image, placement: Placement, size: int) -> Image.Image:
    """The placement's square of the photo at size x size. Parts outside the photo take its mean colour."""
    factor = int(placement.side // (2 * size))
    if factor >= 2:  # shrink first with a box filter: a bicubic transform alone would alias
        photo = photo.reduce(factor)
        placement = Placement(placement.cx / factor, placement.cy / factor, placement.side / factor, placement.angle)
    fill = tuple(int(v) for v in np.asarray(photo).reshape(-1, 3).mean(axis=0).round())
    return photo.transform((size, size), Image.Transform.AFFINE, placement.to_photo(size),
                           Image.Resampling.BICUBIC, fillcolor=fill)


def paste(photo: Image.Image, face: Image.Image, placement: Placement) -> None:
    """Put the face back into the photo (in place) where the placement says, fading out at its edges.

    Only the part of the photo that the face covers is resampled, straight from the face's own pixels, so the
    work is the face's on the photo whatever side the placement claims."""
    size = face.width
    a, b, c, d, e, f = placement.to_photo(size)
    xs = [a * u + b * v + c for u in (0, size) for v in (0, size)]
    ys = [d * u + e * v + f for u in (0, size) for v in (0, size)]
    left, top = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    right, bottom = min(photo.width, math.ceil(max(xs))), min(photo.height, math.ceil(max(ys)))
    if right <= left or bottom <= top:  # the face lies outside the photo
        return
    ramp = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5) / (FEATHER * size)
    mask = Image.fromarray((np.clip(np.minimum.outer(ramp, ramp), 0, 1) * 255).round().astype(np.uint8))
    a, b, c, d, e, f = placement.to_crop(size)
    box, box_size = (left, top, right, bottom), (right - left, bottom - top)
    face = face.convert(photo.mode)
    if placement.angle == 0:  # an upright square: a (separable, several times faster) resize of the covered part
        source = tuple(min(max(v, 0.0), size) for v in (a * left + c, e * top + f, a * right + c, e * bottom + f))
        warped = face.resize(box_size, Image.Resampling.BICUBIC, box=source)
        alpha = mask.resize(box_size, Image.Resampling.BILINEAR, box=source)
    else:
        region = (a, b, c + a * left + b * top, d, e, f + d * left + e * top)  # from the box's pixels
        warped = face.transform(box_size, Image.Transform.AFFINE, region, Image.Resampling.BICUBIC)
        alpha = mask.transform(box_size, Image.Transform.AFFINE, region, Image.Resampling.BILINEAR)
    photo.paste(warped, box[:2], alpha)


def file_placement(header: Header, model_size: int) -> Placement:
    """Where a file's face lies in the photo it was made from: its position (or, in files made before positions,
    its crop), or the centre square."""
    if header.position is not None:
        return Placement.from_position(header.position)
    if header.crop is not None:
        return Placement.from_stored(header.crop)
    return Placement.centre_square(*(header.original_size or (model_size, model_size)))


def frame_decoded(face: Image.Image, header: Header, size: int | None = None, photo: Image.Image | None = None
                  ) -> Image.Image:
    """A decoded face as the caller wants it: the crop (at its own size, or size x size), or put back into the
    photo the file was made from (which it draws into: pass a copy you own, as open_image gives)."""
    if photo is not None:
        expected = header.photo_size or face.size
        if header.photo_size is None and photo.size != expected:
            raise ImageError(f"the file does not say where its face lies in a photo (it was made from a "
                             f"{face.width}x{face.height} crop, or without its position)")
        if photo.size != expected:
            raise ImageError(f"the photo to paste into is {photo.width}x{photo.height}, and the file was made from "
                             f"a {expected[0]}x{expected[1]} image")
        paste(photo, face, file_placement(header, face.width))
        return photo.convert("L") if header.grayscale else photo
    if size is None or size == face.width:
        return face
    if not (isinstance(size, int) and MIN_OUTPUT_SIDE <= size <= MAX_OUTPUT_SIDE):
        raise OptionError(f"output size {size!r} is not from {MIN_OUTPUT_SIDE} to {MAX_OUTPUT_SIDE}")
    return face.resize((size, size), Image.Resampling.LANCZOS)


# -- finding faces (the align extra) ----------------------------------------------------------------


def alignment_available() -> bool:
    """Whether dlib and the landmark model are installed, without importing them."""
    return importlib.util.find_spec("dlib") is not None and _models_folder() is not None


def _models_folder() -> Path | None:
    # face_recognition_models' __init__ imports pkg_resources, which new setuptools lacks: only find its files.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if folder.is_dir() else None


def landmark_model(name: str) -> str:
    """The path of one of face_recognition_models' dlib model files."""
    folder = _models_folder()
    if folder is None or not (folder / name).is_file():
        raise MissingExtraError("face alignment needs dlib's models: pip install 'gecodec[align]'")
    return str(folder / name)


@lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    try:
        import dlib
    except ImportError:
        raise MissingExtraError("face alignment needs dlib: pip install 'gecodec[align]'") from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(landmark_model("shape_predictor_5_face_landmarks.dat"))


def find_eyes(photo: Image.Image) -> tuple[Point, Point] | None:
    """The eye centres (image-left eye first, as the face sees it mirrored) of the largest face, or None."""
    detector, predictor = _dlib_models()
    scale = min(1.0, DETECT_SIDE / max(photo.size))
    # At least a pixel a side: a 1 x 100000 strip would otherwise shrink to nothing.
    small = photo if scale == 1.0 else photo.resize((max(1, round(photo.width * scale)),
                                                      max(1, round(photo.height * scale))), Image.Resampling.BILINEAR)
    upsample = 1 if max(small.size) < DETECT_SIDE / 2 else 0  # small photos: look for smaller faces too
    for angle in (0.0, *RETRY_ANGLES):
        turned = small if angle == 0.0 else small.rotate(angle, Image.Resampling.BILINEAR, expand=True)
        pixels = np.asarray(turned)
        faces = detector(pixels, upsample)
        if len(faces):
            box = max(faces, key=lambda r: r.area())
            points = [(p.x + 0.5, p.y + 0.5) for p in predictor(pixels, box).parts()]
            # The 5-point model's points 0, 1 are the image-right eye's corners and 2, 3 the image-left's.
            eyes = [((points[2][0] + points[3][0]) / 2, (points[2][1] + points[3][1]) / 2),
                    ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)]
            return tuple(_unturn(eye, angle, small.size, turned.size, scale) for eye in eyes)  # type: ignore[return-value]
    return None


def _unturn(point: Point, angle: float, size: tuple[int, int], turned_size: tuple[int, int], scale: float) -> Point:
    """A point of the rotated (expanded) working image, back in the photo's own pixels."""
    a = math.radians(angle)
    x, y = point[0] - turned_size[0] / 2, point[1] - turned_size[1] / 2
    # Pillow's rotate(angle) turns the picture counter-clockwise; undo it about the centre.
    ux, uy = x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)
    return (ux + size[0] / 2) / scale, (uy + size[1] / 2) / scale


@dataclass(frozen=True)
class Framed:
    """A photo framed for the model: the model-size face crop, where it lies in the photo, and how it was found."""

    face: Image.Image
    placement: Placement
    how: str  # "aligned" (a face was found), "centre" (the centre crop) or "as given" (already model-size)
    note: str | None = None  # why a face was not aligned, when the caller asked for it


def frame_face(photo: Image.Image, geometry: CropGeometry | None, size: int, mode: str = "auto") -> Framed:
    """Frame a photo for a model of this size.

    auto: the largest face, aligned to the training crops' geometry; the centre crop (with a note) when there
    is no face, no detector or no geometry. none: the centre crop. require: a face, or an ImageError.
    An image already at the model's size is taken as a face crop, as it is.
    """
    if mode not in ALIGN_MODES:
        raise OptionError(f"align mode {mode!r} is not one of {', '.join(ALIGN_MODES)}")
    centre = Placement.centre_square(*photo.size)
    if photo.size == (size, size):
        return Framed(photo, centre, "as given")
    if mode == "none":
        return Framed(centre_crop(photo, size), centre, "centre")
    if geometry is None:
        note = "the model has no face geometry"
    elif not alignment_available():
        if mode == "require":
            _dlib_models()  # raises the missing-extra error
        note = NO_DETECTOR
    else:
        eyes = find_eyes(photo)
        if eyes is not None:
            # The face is cut where its file will say it lies: the placement a position can code.
            placement = Placement.from_position(placement_from_eyes(*eyes, geometry, size).position(*photo.size))
            return Framed(crop(photo, placement, size), placement, "aligned")
        note = "no face found"
    if mode == "require":
        raise ImageError(f"{note}, and alignment was required")
    why = note if note == NO_DETECTOR else f"{note}; using the centre crop"
    return Framed(centre_crop(photo, size), centre, "centre", why)
