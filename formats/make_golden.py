"""Regenerate the golden .gec files and the tiny model bundle they need. Run only on purpose:

    python formats/make_golden.py --force

Golden files are a compatibility contract: tests decode them on every run, so once committed they are
never regenerated unless the format version changes (then add new files and keep the old ones).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gecodec import container
from gecodec.bundle import Bundle, load_bundle, save_bundle
from gecodec.codec import Codec
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.models import AutoencoderDecoder, Encoder, EncoderConfig, Generator, GeneratorConfig
from gecodec.quantize import unpack_bits

HERE = Path(__file__).parent / "golden"
TINY_BUNDLE = HERE / "tiny-test.safetensors"

# (file name, encode options, original size, decoder hints)
CASES = [
    ("ge-8bit.gec", {"bits": 8, "mode": "ge", "seed": 0}, None),
    ("ge-4bit-nonsquare.gec", {"bits": 4, "mode": "ge", "seed": 7}, (40, 24)),
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


def test_image(index: int) -> torch.Tensor:
    """A deterministic 16x16 picture: smooth colour ramps, different per case."""
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float64)
    pixels = np.stack([(xx * 15 + index * 40) % 256, yy * 15, (xx + yy) * 7 + index * 20], axis=-1) % 256
    return pixels_to_tensor(pixels.astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="overwrite the committed golden files")
    args = parser.parse_args()
    if TINY_BUNDLE.exists() and not args.force:
        parser.error(f"{TINY_BUNDLE} exists; golden files are a contract: pass --force only on purpose")
    HERE.mkdir(parents=True, exist_ok=True)
    save_bundle(make_tiny_bundle(), TINY_BUNDLE)
    bundle = load_bundle(TINY_BUNDLE)
    codec = Codec(bundle, "cpu")
    expected = {"bundle": TINY_BUNDLE.name, "bundle_sha256": bundle.sha256, "files": {}}
    for index, (name, options, original_size) in enumerate(CASES):
        x = test_image(index).unsqueeze(0)
        data = codec.encode_batch(x, original_sizes=[original_size], hints=HINTS, **options)[0]
        (HERE / name).write_bytes(data)
        header, payload = container.read(data)
        count = header.count or bundle.m
        decoded = codec.decode_batch([data])[0]
        np.save(HERE / (name + ".decoded.npy"), tensor_to_pixels(decoded))
        expected["files"][name] = {
            "bytes": len(data),
            "header": {"model_id": header.model_hex, "bits": header.bits, "seed": header.seed, "mode": header.mode,
                       "original_size": header.original_size, "count": header.count,
                       "value_range": header.value_range, "hints": header.hints},
            "values": unpack_bits(payload, count, header.bits).tolist(),
        }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(CASES)} golden files and {TINY_BUNDLE.name} to {HERE}")


if __name__ == "__main__":
    main()
