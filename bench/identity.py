"""Face identity as a benchmark metric: does the decoded face still show the same person?

PSNR cannot tell a blurry but faithful face from a sharp face of someone else; a face recogniser can. Per image,
`identity_distance` is the Euclidean distance between dlib's ResNet face descriptors (128-D,
dlib_face_recognition_resnet_model_v1) of the original and of the decoded face, and `same_person` is 1.0 when
that distance is under 0.6, dlib's own threshold for one person (99.38% on LFW), else 0.0.

Protocol, for tight face crops such as the 64x64 CelebA faces:
1. Both images, as 8-bit RGB, are upsampled to 256x256 (bicubic), since dlib's HOG detector finds faces of
   about 80 pixels and up, and given a grey (128) border of BORDER pixels, so that the detector sees the whole
   face and chips that reach past the crop are filled the same way in both.
2. On the original only: dlib's frontal HOG face detector (no further upsampling; the largest box). When it finds
   no face (about 1 crop in 10 on CelebA: profiles, tilted heads), FALLBACK_BOX stands in for its box. Then
   the 5-point shape predictor (shape_predictor_5_face_landmarks) in that box.
3. dlib.get_face_chip(image, landmarks, size=150, padding=0.25) from the original and from the decoded image,
   both with the original's landmarks: the geometry is identical and only the pixels differ, so a codec is
   not rewarded or punished for moving the landmarks.
4. The two chips' descriptors, and their distance.

A descriptor costs about 75 ms on one CPU core, so the original's landmarks and descriptor are computed once
per image and process (keyed by its pixels) and each decoded image costs one descriptor.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np
from PIL import Image

from gecodec.align import landmark_model
from gecodec.errors import MissingExtraError

SAME_PERSON = 0.6  # dlib's threshold: descriptors of one person are closer than this
UPSAMPLED = 256
BORDER = 64
# The detector's mean box (left, top, right, bottom, in the 256x256 upsampled image, before the border) on the
# first 1,000 CelebA 64x64 validation faces: 906 detections. The box spans eyebrows to chin and runs past the
# crop's bottom edge.
FALLBACK_BOX = (22, 70, 239, 287)


class FaceIdentity:
    """dlib's face models, and the originals measured so far (their landmarks and descriptor)."""

    def __init__(self) -> None:
        try:
            import dlib

            predictor_file = landmark_model("shape_predictor_5_face_landmarks.dat")
            recogniser_file = landmark_model("dlib_face_recognition_resnet_model_v1.dat")
        except (ImportError, MissingExtraError):  # the latter names the align extra; the harness's is bench
            raise MissingExtraError("the face identity metric needs dlib and face_recognition_models: "
                                    "pip install 'gecodec[bench]'") from None
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(predictor_file)
        self.recogniser = dlib.face_recognition_model_v1(recogniser_file)
        self.originals: dict[tuple[tuple[int, ...], bytes], tuple[Any, np.ndarray]] = {}

    def measure(self, decoded: np.ndarray, originals: np.ndarray) -> dict[str, list[float]]:
        """Per image of two uint8 (N, H, W, 3) batches: identity_distance and same_person (1.0 or 0.0)."""
        distances = [self.distance(d, o) for d, o in zip(decoded, originals)]
        return {"identity_distance": distances, "same_person": [float(d < SAME_PERSON) for d in distances]}

    def distance(self, decoded: np.ndarray, original: np.ndarray) -> float:
        """The descriptor distance of one decoded face from its original, aligned by the original's landmarks."""
        landmarks, reference = self.measure_original(original)
        return float(np.linalg.norm(self.descriptor(prepare(decoded), landmarks) - reference))

    def measure_original(self, original: np.ndarray) -> tuple[Any, np.ndarray]:
        """Step 2, and the original's descriptor: once per image (keyed by its pixels)."""
        key = (original.shape, hashlib.blake2b(original.tobytes(), digest_size=16).digest())
        if key not in self.originals:
            image = prepare(original)
            found = self.detector(image, 0)
            box = (max(found, key=lambda r: r.area()) if len(found) else
                   self.dlib.rectangle(*(value + BORDER for value in FALLBACK_BOX)))
            landmarks = self.landmarks(image, box)
            self.originals[key] = landmarks, self.descriptor(image, landmarks)
        return self.originals[key]

    def descriptor(self, image: np.ndarray, landmarks: Any) -> np.ndarray:
        chip = self.dlib.get_face_chip(image, landmarks, size=150, padding=0.25)
        return np.array(self.recogniser.compute_face_descriptor(chip))


def prepare(pixels: np.ndarray) -> np.ndarray:
    """Step 1: upsampled to 256x256 (bicubic) with a grey border."""
    upsampled = np.asarray(Image.fromarray(pixels).resize((UPSAMPLED, UPSAMPLED), Image.Resampling.BICUBIC))
    return np.pad(upsampled, ((BORDER, BORDER), (BORDER, BORDER), (0, 0)), constant_values=128)


@functools.cache
def face_identity() -> FaceIdentity:
    """The process's one FaceIdentity, so that the models load once and each original is measured once per run."""
    return FaceIdentity()
