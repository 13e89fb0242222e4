"""The recipe of the default model, faces64-default: celeba64-default's G, EN and learned start, trained on
faces as users have them (bench/results/wild).

    python -m gecodec.train.photos --data ../shared/data/lfw/train --out runs/lfw64
    python -m gecodec.train.wild_recipe --data ../shared/data/celeba64 --photos runs/lfw64 --until-minutes 60
    python -m gecodec.train.wild_recipe --data ../shared/data/celeba64 --photos runs/lfw64 \\
        --out gecodec/weights/faces64-default.safetensors

Half of each batch's real faces are CelebA's crops and half LFW training people's photos, framed by the face
finder as `gec encode photo.jpg` frames them; each real face is augmented with what photos vary in (AUGMENT).
The noise is that of entropy-coded files over the whole quality range and the prior term MMD, as in
celeba64-default's last stage: the mix, the augmentations and the run length won the equal-budget comparisons
in bench/results/wild. Each call continues the run in --run-dir; --until-minutes stops early so that each call
fits a session. Once MINUTES are spent, --out exports the bundle, calibrated on both sources, with
celeba64-default's decode schedule and face geometry (the photos were framed with it), validation figures on
CelebA's crops and refinement tables fitted on both sources.

The learned layer, the transform model of version-3 files, the quality ladder and the photos' figures come
after, from the exported bundle, each on both sources (the learned layer goes on from celeba64-default's):

    python -m gecodec.train.refiner bases --data ../shared/data/celeba64/train --photos runs/lfw64 \\
        --bundle OUT --run runs/wild-refiner
    python -m gecodec.train.refiner train --run runs/wild-refiner --minutes 40 --lr 3e-4 --init-from celeba64-default
    python -m gecodec.train.refiner store --run runs/wild-refiner --bundle OUT
    python -m gecodec.train.transform_model --data ../shared/data/celeba64 --photos runs/lfw64 --bundle OUT
    python -m gecodec.train.quality_ladder --data ../shared/data/celeba64/train --photos runs/lfw64 --bundle OUT \\
        --measured runs/wild-ladder.json
    python -m gecodec.train.photo_card --bundle OUT --photos runs/lfw64 --faces "LFW validation people"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gecodec.bundle import Bundle, load_bundle, load_model, update_bundle
from gecodec.models.solver import SolverConfig
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import load_images, to_float
from gecodec.train.joint import JointTrainConfig, export_joint, train_joint
from gecodec.train.joint_recipe import DECODE, RATE_QUALITIES
from gecodec.train.photos import alternate, load_framed
from gecodec.train.refine_tables import REFINE_IMAGES, store_refinement

NAME = "faces64-default"
DATA_TERMS = ("trained on CelebA (Liu et al. 2015: non-commercial research use only) and LFW (Huang et al. 2007: "
              "published for research); use beyond non-commercial research depends on those terms")
START = "celeba64-default"
MINUTES = 114
PHOTO_SHARE = 0.5
AUGMENT = {"geometry": 0.3, "light": 0.3, "blur": 0.15, "noise": 0.15, "jpeg": 0.15}


def recipe_config(start: Bundle, minutes: float) -> JointTrainConfig:
    """From START's G, EN and solver, on both sources, with the noise of entropy-coded files."""
    return JointTrainConfig(
        generator=start.generator.config, encoder=start.encoder.config, init_from=START,
        solver=SolverConfig(m=start.m, latent_dim=start.generator.config.latent_dim, steps=0, init="learned"),
        prior="mmd", prior_weight=0.1, qualities=RATE_QUALITIES, photo_share=PHOTO_SHARE, augment=AUGMENT,
        minutes=minutes, steps=1_000_000,
    )


def keep_framing(path: Path, start: Bundle) -> None:
    """Give the bundle START's face geometry: its photos were framed with it, and CelebA's crops sit there too."""
    record = {**start.card["crop_geometry"], "kept_from": f"{START} (id {start.model_hex}), whose framing the "
              "training photos have"}
    update_bundle(path, crop=start.crop, card={**load_bundle(path).card, "crop_geometry": record})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with CelebA's train/ and val/ crops")
    parser.add_argument("--photos", type=Path, required=True, help="a framing folder (python -m gecodec.train.photos)")
    parser.add_argument("--out", type=Path, default=None, help="bundle file to write once the budget is spent")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/wild/main"))
    parser.add_argument("--until-minutes", type=float, default=MINUTES, help=f"stop at this many of {MINUTES}")
    parser.add_argument("--val-images", type=int, default=64, help="validation images for the model card (0: none)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    start = load_model(START)
    faces, photos = load_images(args.data / "train", start.image_size), load_framed(args.photos, "train")
    checkpoint = args.run_dir / "checkpoint.pt"
    train_joint(faces, args.run_dir, recipe_config(start, min(args.until_minutes, MINUTES)), photos=photos,
                resume=checkpoint.exists())
    state = load_checkpoint(checkpoint)
    if args.out is None or state["elapsed"] < MINUTES * 60:
        print(f"{args.run_dir}: {state['elapsed'] / 60:.1f} of {MINUTES} minutes trained ({state['step']} steps)")
        return
    both = alternate(faces, photos)  # export_bundle calibrates on the first 10,000: half of each
    data = f"{args.data / 'train'} and the training photos of {args.photos}, in turn"
    val = to_float(load_images(args.data / "val", start.image_size, limit=args.val_images)) if args.val_images else None
    bundle = export_joint(state, args.out, NAME, both, data, DECODE, val,
                          made_by="python -m gecodec.train.wild_recipe")
    keep_framing(args.out, start)
    update_bundle(args.out, card={**load_bundle(args.out).card, "data_terms": DATA_TERMS})
    store_refinement(args.out, to_float(both[:REFINE_IMAGES]))
    print(f"wrote {args.out} (id {bundle.model_hex}) in {(time.monotonic() - started) / 60:.1f} min; "
          f"val GE PSNR {bundle.card['val'].get('ge_real', {}).get('psnr')} dB")


if __name__ == "__main__":
    main()
