"""Write the golden .gec files and the tiny model bundles they need. Run only on purpose:

    python formats/make_golden.py            # writes only the sets that are not there yet
    python formats/make_golden.py --force    # rewrites every set

Golden files are a compatibility contract: tests decode them on every run, so once committed they are
never regenerated unless the format version changes (then add new files and keep the old ones).

Sets: the tiny GE1 bundle's files (expected.json), a tiny joint bundle's file (expected-joint.json), a
file made with the shipped default model of 2026-11, celeba64-default id 93851b1c (expected-default-v2.json),
version-2 (entropy-coded) files of a tiny bundle with an entropy model (expected-entropy.json), and files
made with the joint default of 2026-11-28 (expected-default-v3.json: its default quality and 8 bits), and
files with a face's crop in a photo, version 2 and version 1 (expected-crop.json), a file of the default
model with a refinement layer (expected-refine.json), and one with a learned refinement layer
(expected-learned.json), version-3 (transform-coded) files of a tiny bundle with a transform model
(expected-transform.json), the default model's version-3 files, its default quality and one with a
learned layer (expected-default-v3-transform.json), its default file with a learned layer at a coarse
level (expected-default-v3-coarse.json), its default file with a DCT layer and with a learned one on the
start picture (expected-default-v3-start.json), and files of faces in photos that hold their position (key 13),
version 3 and version 1 (expected-position.json), and files of faces64-default, the default since 2026-12: its
default file (version 4, decoded to its start picture), a photo's, and a searched one (expected-faces64.json). The crop files (expected-crop.json, v3-q15-crop.gec) predate
positions and hold crops (key 8); --force would rewrite them with positions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from gecodec import container
from gecodec.align import Placement
from gecodec.bundle import Bundle, load_bundle, load_model, save_bundle
from gecodec.codec import Codec, Source
from gecodec.entropy import fit_entropy_model
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.models import AutoencoderDecoder, Encoder, EncoderConfig, Generator, GeneratorConfig
from gecodec.models.solver import LatentSolver, SolverConfig
from gecodec.quantize import unpack_bits
from gecodec.search import SearchOptions
from gecodec.transform_coding import fit_transform_model

HERE = Path(__file__).parent / "golden"
TINY_BUNDLE = HERE / "tiny-test.safetensors"
TINY_JOINT_BUNDLE = HERE / "tiny-joint-test.safetensors"
TINY_ENTROPY_BUNDLE = HERE / "tiny-entropy-test.safetensors"
TINY_TRANSFORM_BUNDLE = HERE / "tiny-transform-test.safetensors"

# (file name, encode options, the source picture's record)
CASES = [
    ("ge-8bit.gec", {"bits": 8, "mode": "ge", "seed": 0}, None),
    ("ge-4bit-nonsquare.gec", {"bits": 4, "mode": "ge", "seed": 7}, Source((40, 24))),
    ("cs-6bit.gec", {"bits": 6, "mode": "cs", "seed": 3, "count": 32}, None),
]
HINTS = {"iters": 30, "restarts": 2}


def make_tiny_bundle(seed: int = 0) -> Bundle:
    """A 16x16 model with random weights: a test fixture, not a trained model (its card says so)."""
    torch.manual_seed(seed)
    generator = Generator(GeneratorConfig(image_size=16, latent_dim=8, channels=8))
    enc_config = EncoderConfig(image_size=16, m=16, depth=2, filters=4)
    encoder = Encoder(enc_config)
    with torch.no_grad():
        samples = torch.cat([generator(torch.randn(256, 8)), torch.rand(256, 3, 16, 16) * 2 - 1])
        outputs = encoder(samples)
    return Bundle(
        name="tiny-test",
        generator=generator.eval(),
        encoder=encoder.eval(),
        calibration_lo=outputs.min(0).values,
        calibration_hi=outputs.max(0).values,
        card={"summary": "untrained random weights, 16x16: a test fixture for the container and codec tests"},
        ae_decoder=AutoencoderDecoder(enc_config, channels=4).eval(),
    )


def test_image(index: int, size: int = 16) -> torch.Tensor:
    """A deterministic picture (16x16 for the tiny bundles): smooth colour ramps, different per case."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) * 16 / size
    pixels = np.stack([(xx * 15 + index * 40) % 256, yy * 15, (xx + yy) * 7 + index * 20], axis=-1) % 256
    return pixels_to_tensor(pixels.astype(np.uint8))


def make_tiny_joint_bundle(seed: int = 1) -> Bundle:
    """A 16x16 joint model with random weights (DCGAN-style G, a learned-start solver, a short Adam schedule)."""
    torch.manual_seed(seed)
    generator = Generator(GeneratorConfig(image_size=16, latent_dim=8, channels=8, arch="dcgan")).eval()
    encoder = Encoder(EncoderConfig(image_size=16, m=16, depth=2, filters=4)).eval()
    solver = LatentSolver(SolverConfig(m=16, latent_dim=8, steps=2, init="learned", hidden=16)).eval()
    with torch.no_grad():
        outputs = encoder(torch.rand(256, 3, 16, 16) * 2 - 1)
    return Bundle(
        name="tiny-joint-test", generator=generator, encoder=encoder,
        calibration_lo=outputs.min(0).values, calibration_hi=outputs.max(0).values,
        card={"summary": "untrained random weights, 16x16: a test fixture for joint bundles"},
        solver=solver, decode=SearchOptions(iters=5, restarts=1, lr=0.05),
    )


def make_tiny_entropy_bundle(seed: int = 2) -> Bundle:
    """The tiny joint model's networks (other random weights) with an entropy model fitted to EN's outputs."""
    joint = make_tiny_joint_bundle(seed)
    with torch.no_grad():
        outputs = joint.encoder(torch.rand(512, 3, 16, 16) * 2 - 1)
    return Bundle(
        name="tiny-entropy-test", generator=joint.generator, encoder=joint.encoder,
        calibration_lo=joint.calibration_lo, calibration_hi=joint.calibration_hi,
        card={"summary": "untrained random weights, 16x16: a test fixture for entropy-coded (version 2) files"},
        solver=joint.solver, decode=joint.decode, entropy=fit_entropy_model(outputs),
    )


def make_tiny_transform_bundle() -> Bundle:
    """The tiny entropy bundle (the same model id) with a transform model fitted to EN's outputs."""
    bundle = load_bundle(TINY_ENTROPY_BUNDLE)
    with torch.no_grad():
        outputs = bundle.encoder(torch.rand(512, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1)
    return dataclasses.replace(
        bundle, name="tiny-transform-test", transform=fit_transform_model(outputs), transform_sha256="", path=None,
        card={"summary": "untrained random weights, 16x16: a test fixture for transform-coded (version 3) files"})


def header_fields(header: container.Header) -> dict:
    fields = {"model_id": header.model_hex, "bits": header.bits, "seed": header.seed, "mode": header.mode,
              "original_size": header.original_size, "count": header.count, "value_range": header.value_range,
              "hints": header.hints}
    if header.quality is not None:
        fields["quality"] = header.quality
    if header.crop is not None:
        fields["crop"] = header.crop
    if header.position is not None:
        fields["position"] = header.position
    if header.layer is not None:
        fields["layer"] = header.layer
    if header.transform:
        fields["transform"] = True
    if header.start_picture:
        fields["start_picture"] = True
    return fields


def stored_values(bundle: Bundle, header: container.Header, payload: bytes) -> list[int]:
    """The integers a file holds: fixed-length values (version 1) or entropy-coded symbols (version 2)."""
    if header.quality is not None:  # the base layer's symbols (a refinement layer follows them)
        base = payload[: header.layer.base_bytes] if header.layer else payload
        return (bundle.transform if header.transform else bundle.entropy).decode(base, header.quality).tolist()
    return unpack_bits(payload, header.count or bundle.m, header.bits).tolist()


def write_set(expected_name: str, bundle: Bundle, bundle_file: str | None, cases: list, hints: dict) -> None:
    """Encode each case's picture, write the .gec file, its decoded pixels, and what a reader must find in it."""
    codec = Codec(bundle, "cpu")
    expected = {"bundle": bundle_file or bundle.name, "bundle_sha256": bundle.sha256, "files": {}}
    if bundle.transform is not None:
        expected["transform_sha256"] = bundle.transform_sha256
    for index, (name, options, source) in enumerate(cases):
        x = test_image(index, bundle.image_size).unsqueeze(0)
        options = dict(options)
        layer = options.pop("layer", None)  # (level, kind[, on_start]): a layer added to the file the others make
        data = codec.encode_batch(x, sources=[source or Source()], hints=hints, **options)[0]
        if layer is not None:
            data = codec.layered([data], x, codec.layer_bases([data], layer[2] if len(layer) > 2 else False),
                                 *layer)[0][0]
        (HERE / name).write_bytes(data)
        header, payload = container.read(data)
        decoded = codec.decode_batch([data])[0]
        np.save(HERE / (name + ".decoded.npy"), tensor_to_pixels(decoded))
        expected["files"][name] = {"bytes": len(data), "header": header_fields(header),
                                   "values": stored_values(bundle, header, payload)}
    (HERE / expected_name).write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {expected_name}: {len(cases)} golden files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rewrite the sets already committed")
    args = parser.parse_args()
    HERE.mkdir(parents=True, exist_ok=True)
    if args.force or not (HERE / "expected.json").exists():
        save_bundle(make_tiny_bundle(), TINY_BUNDLE)
        write_set("expected.json", load_bundle(TINY_BUNDLE), TINY_BUNDLE.name, CASES, HINTS)
    if args.force or not (HERE / "expected-joint.json").exists():
        save_bundle(make_tiny_joint_bundle(), TINY_JOINT_BUNDLE)
        write_set("expected-joint.json", load_bundle(TINY_JOINT_BUNDLE), TINY_JOINT_BUNDLE.name,
                  [("joint-ge-8bit.gec", {"bits": 8, "mode": "ge", "seed": 0}, None)], {})
    if args.force or not (HERE / "expected-default-v2.json").exists():
        bundle = load_model("93851b1c")  # the shipped default of 2026-11, before the joint model replaced it
        write_set("expected-default-v2.json", bundle, None,
                  [("default-v2-8bit.gec", {"bits": 8, "mode": "ge", "seed": 0}, None)], {"iters": 20, "restarts": 1})
    if args.force or not (HERE / "expected-entropy.json").exists():
        save_bundle(make_tiny_entropy_bundle(), TINY_ENTROPY_BUNDLE)
        write_set("expected-entropy.json", load_bundle(TINY_ENTROPY_BUNDLE), TINY_ENTROPY_BUNDLE.name, [
            ("v2-q60.gec", {"quality": 60}, None),
            ("v2-q5-nonsquare.gec", {"quality": 5, "seed": 9}, Source((40, 24))),
        ], {})
    if args.force or not (HERE / "expected-refine.json").exists():
        bundle = load_model("celeba64-default")  # the joint default, with its refinement tables
        write_set("expected-refine.json", bundle, None, [("default-v3-refined.gec", {"refine": 7}, None)],
                  {"iters": 20})
    if args.force or not (HERE / "expected-learned.json").exists():
        bundle = load_model("celeba64-default")  # the joint default, with its learned refinement layer
        write_set("expected-learned.json", bundle, None,
                  [("default-v3-learned.gec", {"layer": (5, "learned")}, None)], {"iters": 20})
    if args.force or not (HERE / "expected-crop.json").exists():
        write_set("expected-crop.json", load_bundle(TINY_ENTROPY_BUNDLE), TINY_ENTROPY_BUNDLE.name, [
            ("v2-crop.gec", {"quality": 30}, Source((640, 480), Placement.from_stored((300, 200, 150, -123)))),
            ("v1-crop-gray.gec", {"bits": 5}, Source((640, 480), Placement.from_stored((320, 241, 480, 0)), grayscale=True)),
        ], {})
    if args.force or not (HERE / "expected-default-v3.json").exists():
        bundle = load_model("celeba64-default")  # the joint default that replaced 93851b1c
        write_set("expected-default-v3.json", bundle, None, [
            ("default-v3-quality.gec", {}, None),
            ("default-v3-8bit.gec", {"bits": 8}, None),
        ], {"iters": 20})
    if args.force or not (HERE / "expected-transform.json").exists():
        save_bundle(make_tiny_transform_bundle(), TINY_TRANSFORM_BUNDLE)
        write_set("expected-transform.json", load_bundle(TINY_TRANSFORM_BUNDLE), TINY_TRANSFORM_BUNDLE.name, [
            ("v3-q60.gec", {"quality": 60}, None),
            ("v3-q15-crop.gec", {"quality": 15, "seed": 4}, Source((640, 480), Placement.from_stored((300, 200, 150, 57)))),
        ], {})
    if args.force or not (HERE / "expected-default-v3-transform.json").exists():
        bundle = load_model("celeba64-default")  # the joint default, with its transform model (version-3 files)
        write_set("expected-default-v3-transform.json", bundle, None, [
            ("default-v3-transform.gec", {}, None),
            ("default-v3-transform-q50.gec", {"quality": 50}, None),
        ], {"iters": 20})
    if args.force or not (HERE / "expected-default-v3-coarse.json").exists():
        bundle = load_model("celeba64-default")  # the joint default, with its learned layer's coarse levels
        write_set("expected-default-v3-coarse.json", bundle, None,
                  [("default-v3-coarse.gec", {"layer": (-6, "learned")}, None)], {"iters": 20})
    if args.force or not (HERE / "expected-position.json").exists():  # faces in photos since key 13
        write_set("expected-position.json", load_bundle(TINY_TRANSFORM_BUNDLE), TINY_TRANSFORM_BUNDLE.name, [
            ("v3-position.gec", {"quality": 40}, Source((640, 480), Placement(301.4, 199.2, 151.0, -12.3))),
            ("v1-position-gray.gec", {"bits": 6}, Source((176, 200), Placement(80.0, 95.5, 118.0, 8.0),
                                                         grayscale=True)),
        ], {})
    if args.force or not (HERE / "expected-default-v3-start.json").exists():
        bundle = load_model("celeba64-default")  # the joint default: layers on its learned start's picture, which need no search
        write_set("expected-default-v3-start.json", bundle, None, [
            ("default-v3-start-dct.gec", {"refine": 7}, None),
            ("default-v3-start-learned.gec", {"layer": (-6, "learned", True)}, None),
        ], {})
    if args.force or not (HERE / "expected-faces64.json").exists():
        bundle = load_model("faces64-default")  # bases alone on their start picture: version 4
        write_set("expected-faces64.json", bundle, None, [
            ("faces64-default.gec", {}, None),
            ("faces64-q20-photo.gec", {"quality": 20}, Source((176, 176), Placement(88.0, 92.5, 96.0, 4.0))),
        ], {})
        write_set("expected-faces64-searched.json", bundle, None, [("faces64-searched.gec", {"seed": 5}, None)],
                  {"iters": 20})


if __name__ == "__main__":
    main()
