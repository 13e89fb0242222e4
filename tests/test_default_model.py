"""The model shipped inside the package: present, trained, and making files within the size budget."""

from __future__ import annotations

from click.testing import CliRunner

import gecodec
from gecodec import container
from gecodec.bundle import DEFAULT_MODEL, SHIPPED_DIR, find_by_id, load_model
from gecodec.cli import main

from conftest import face_like


def test_default_model_is_shipped_and_has_a_model_card():
    bundle = load_model()
    assert bundle.name == DEFAULT_MODEL and bundle.path.parent == SHIPPED_DIR.resolve()
    assert (bundle.image_size, bundle.m) == (64, 128)
    card = bundle.card
    assert card["generator"]["steps"] > 1000 and card["joint"]["steps"] > 1000  # trained, not random
    assert {"ge_real", "ge_generated", "generator_floor_real"} <= set(card["val"])
    assert bundle.solver is not None and bundle.entropy is not None
    assert card["rate"]["default_quality"] == bundle.entropy.default_quality
    assert bundle.path.stat().st_size < 8 * 1024 * 1024


def test_default_file_is_entropy_coded_and_at_most_152_bytes():
    data = gecodec.encode(face_like(64, 64))
    header, _ = container.read(data)
    assert header.quality == load_model().entropy.default_quality and len(data) <= 152
    assert len(gecodec.encode(face_like(64, 64), bits=8)) == 145  # fixed-length files are still there
    image = gecodec.decode(data, iters=2)
    assert image.size == (64, 64)


def test_gec_info_shows_the_default_header(tmp_path):
    path = tmp_path / "face.gec"
    path.write_bytes(gecodec.encode(face_like(64, 64)))
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0
    assert DEFAULT_MODEL in result.output and "128 values" in result.output
    bundle = load_model()
    rung = bundle.ladder[bundle.default_quality]  # the file stores its base's quality; info names the --quality
    start = ", decoded to its start picture" if rung.on_start else ""
    assert f"quality   {bundle.default_quality} (base quality {rung.base_quality} alone{start})" in result.output
    assert f"model id {bundle.model_hex} with its transform model" in result.output


def test_gec_models_names_the_default_and_its_training_datas_terms():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0 and f"{DEFAULT_MODEL} (default)" in result.output
    assert "data terms: trained on CelebA" in result.output and "non-commercial research" in result.output
    assert "celeba64-default  id ac979f61" in result.output  # the default before it still ships, by name
    blocks = result.output.replace("\n    ", "  ").splitlines()  # one line per model
    entries = [block for block in blocks if block.startswith("celeba64-")]  # each shipped CelebA model's terms
    assert len(entries) == 3 and all("data terms: trained on CelebA (Liu et al. 2015: non-commercial research use "
                                     "only)" in entry for entry in entries)


def test_files_made_with_earlier_default_models_still_find_them():
    # celeba64-default was model aed91f57, then 93851b1c; files in the wild name those ids.
    for model_id, name in ((0xAED91F57, "celeba64-v1"), (0x93851B1C, "celeba64-v2")):
        bundle = find_by_id(model_id)
        assert bundle.name == name and bundle.path.parent == SHIPPED_DIR.resolve() and bundle.card["legacy"]


def test_the_default_decoder_does_not_depend_on_the_seed():
    """A default file decodes to its start picture; a searched one (a seed or hints ask for a search) takes one
    search from the learned start: the seed (which picks other restarts' starts) changes nothing, so an encoder
    has no seed worth choosing."""
    import torch

    from gecodec.codec import Codec
    from gecodec.imageio import image_to_tensor

    codec = Codec(load_model(), "cpu")
    faces = torch.stack([image_to_tensor(face_like(64, 64, seed=i), 64) for i in range(2)])
    assert codec.encode_batch(faces[:1])[0][2] == 4  # version 4: no search, so no seed
    decoded = [codec.decode_batch(codec.encode_batch(faces, seed=seed, hints={"iters": 20})) for seed in (0, 1, 2**40)]
    assert codec.bundle.decode.restarts == 1 and codec.bundle.solver.config.init == "learned"
    assert all(torch.equal(decoded[0], other) for other in decoded[1:])


def test_the_default_models_qualities_span_tens_of_bytes_to_a_kilobyte_and_rise():
    import numpy as np
    import torch
    from PIL import Image

    from conftest import ROOT
    from gecodec.codec import Codec
    from gecodec.imageio import pixels_to_tensor
    from gecodec.metrics import psnr_8bit

    codec = Codec(load_model(), "cpu")
    strip = np.asarray(Image.open(ROOT / "tests" / "data" / "faces.png").convert("RGB"))
    faces = torch.stack([pixels_to_tensor(strip[:, 64 * i : 64 * i + 64]) for i in range(4)])
    sizes, psnrs = [], []
    for quality in (0, 25, 50, 75, 100):
        files = codec.encode_batch(faces, quality=quality)
        sizes.append(np.mean([len(f) for f in files]))
        psnrs.append(float(psnr_8bit(codec.decode_batch(files), faces).mean()))
    assert sizes[0] < 60 and sizes[-1] > 1000
    assert all(b > a for a, b in zip(sizes, sizes[1:])) and all(b > a for a, b in zip(psnrs, psnrs[1:]))
    default_file = container.read(codec.encode_batch(faces[:1])[0])[0]
    assert (default_file.quality, default_file.layer) == (codec.bundle.entropy.default_quality, None)


def test_the_default_models_learned_layer_beats_its_dct_layer_at_no_more_bytes():
    import numpy as np
    import torch
    from PIL import Image

    from conftest import ROOT
    from gecodec.codec import Codec
    from gecodec.imageio import pixels_to_tensor
    from gecodec.metrics import psnr_8bit

    codec = Codec(load_model(), "cpu")
    strip = np.asarray(Image.open(ROOT / "tests" / "data" / "faces.png").convert("RGB"))
    faces = torch.stack([pixels_to_tensor(strip[:, 64 * i : 64 * i + 64]) for i in range(4)])
    bases = codec.encode_batch(faces)
    pixels = codec.base_decodes(bases)
    learned, learned_decoded = codec.layered(bases, faces, pixels, 6, "learned")
    assert torch.equal(codec.decode_batch(learned), learned_decoded)
    for level in range(16):  # the smallest DCT layer at least as large
        dct, dct_decoded = codec.layered(bases, faces, pixels, level, "dct")
        if np.mean([len(f) for f in dct]) >= np.mean([len(f) for f in learned]):
            break
    assert float(psnr_8bit(learned_decoded, faces).mean()) > float(psnr_8bit(dct_decoded, faces).mean()) + 0.5
