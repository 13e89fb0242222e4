"""The recipe of the default model, celeba64-default: G, EN and the decoder's start trained together (DCS-style).

    python -m gecodec.train.joint_recipe --data ../shared/data/celeba64 --until-minutes 60    # stage 1
    python -m gecodec.train.joint_recipe --data ../shared/data/celeba64 --out gecodec/weights/celeba64-default.safetensors

It starts from the G and EN of model 93851b1c (celeba64-v2, the default before this one, made by
gecodec.train.default_model in 105 CPU-minutes) and trains them with a learned start (no unrolled steps) and the
MMD prior term, the winner of the equal-budget comparison in bench/results/joint/: 100 minutes with the
quantization noise of 8-bit files, then 20 minutes with the noise of entropy-coded files over the whole quality
range (stage 2 starts from stage 1's export, RUN_DIR/stage1.safetensors, in RUN_DIR/rate).
Each call continues the run in --run-dir; --until-minutes stops early so that each call fits a session.
Once the 120 minutes are spent, --out exports the bundle with the decode schedule below (50 Adam iterations from
the learned start: within 0.02 dB of the 500 x 2 search in that comparison), its entropy model, its validation
figures, its default quality, the eye positions of its training crops (gecodec.train.geometry, which needs
the align extra) for framing faces in photos and its refinement tables (gecodec.train.refine_tables).

The learned refinement layer, the transform model of version-3 files and the quality ladder over both layers
come after, from the exported bundle (the shipped layer: 90 minutes of training on one thread; its first 34 at
lr 1e-3 ended where the loss turned NaN, and the run went on from its last checkpoint at 3e-4; its bases are
version-2 files, as the transform model came later):

    python -m gecodec.train.refiner bases --data ../shared/data/celeba64/train --bundle OUT --run runs/refiner
    python -m gecodec.train.refiner train --run runs/refiner --minutes 34
    python -m gecodec.train.refiner train --run runs/refiner --minutes 90 --lr 3e-4
    python -m gecodec.train.refiner store --run runs/refiner --bundle OUT
    python -m gecodec.train.transform_model --data ../shared/data/celeba64 --bundle OUT
    python -m gecodec.train.quality_ladder --data ../shared/data/celeba64/train --bundle OUT \
        --measured runs/ladder/train-candidates-transform.json
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from gecodec.bundle import load_model
from gecodec.models.solver import SolverConfig
from gecodec.search import SearchOptions
from gecodec.train.checkpoint import load_checkpoint
from gecodec.train.data import load_images, to_float
from gecodec.train.geometry import GEOMETRY_IMAGES, measure_geometry, store_geometry
from gecodec.train.joint import JointTrainConfig, export_joint, train_joint
from gecodec.train.refine_tables import REFINE_IMAGES, store_refinement

NAME = "celeba64-default"
START = "93851b1c"  # the G and EN the joint run starts from: celeba64-v2
JOINT_MINUTES, RATE_MINUTES = 100, 20  # the two stages; 120 minutes in all
MINUTES = JOINT_MINUTES + RATE_MINUTES
RATE_QUALITIES = (0, 100)
DECODE = SearchOptions(iters=50, restarts=1, lr=0.05)


def recipe_config(minutes: float) -> JointTrainConfig:
    """Stage 1: from celeba64-v2's G and EN, with the quantization noise of 8-bit fixed-length files."""
    start = load_model(START)
    return JointTrainConfig(
        generator=start.generator.config, encoder=start.encoder.config, init_from=START,
        solver=SolverConfig(m=start.m, latent_dim=start.generator.config.latent_dim, steps=0, init="learned"),
        prior="mmd", prior_weight=0.1, minutes=minutes,
    )


def rate_config(stage_one: Path, minutes: float) -> JointTrainConfig:
    """Stage 2: from stage 1's export (its EMA weights, solver included), with the noise of entropy-coded files
    at a quality drawn per image over the whole --quality range (bench/results/rate: better at every quality
    than as many minutes of stage 1)."""
    return replace(recipe_config(minutes), init_from=str(stage_one), qualities=RATE_QUALITIES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ image folders")
    parser.add_argument("--out", type=Path, default=None, help="bundle file to write once the budget is spent")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/joint-default"))
    parser.add_argument("--cache", type=Path, default=None, help="a .npy cache of the decoded training images")
    parser.add_argument("--until-minutes", type=float, default=MINUTES,
                        help="stop at this many minutes of the recipe's 120 (both stages together)")
    parser.add_argument("--val-images", type=int, default=64, help="validation images for the model card (0: none)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    train = load_images(args.data / "train", 64, cache=args.cache)
    until = min(args.until_minutes, MINUTES)
    checkpoint = args.run_dir / "checkpoint.pt"
    train_joint(train, args.run_dir, recipe_config(min(until, JOINT_MINUTES)), resume=checkpoint.exists())
    state = load_checkpoint(checkpoint)
    stages = [{"noise": "8-bit fixed-length", "minutes": round(state["elapsed"] / 60, 1), "steps": state["step"],
               "init_from": START}]
    stage_one = args.run_dir / "stage1.safetensors"
    if state["elapsed"] >= JOINT_MINUTES * 60 and until > JOINT_MINUTES:
        if not stage_one.exists():
            export_joint(state, stage_one, NAME + "-stage1", train, str(args.data / "train"), DECODE)
        rate_dir = args.run_dir / "rate"
        train_joint(train, rate_dir, rate_config(stage_one, until - JOINT_MINUTES),
                    resume=(rate_dir / "checkpoint.pt").exists())
        state = load_checkpoint(rate_dir / "checkpoint.pt")
        stages.append({"noise": f"entropy-coded, qualities {RATE_QUALITIES[0]} to {RATE_QUALITIES[1]}",
                       "minutes": round(state["elapsed"] / 60, 1), "steps": state["step"]})
    trained = sum(stage["minutes"] for stage in stages)
    if args.out is None or len(stages) < 2 or state["elapsed"] < RATE_MINUTES * 60:
        print(f"{args.run_dir}: {trained:.1f} of {MINUTES} minutes trained ({stages})")
        return
    val = to_float(load_images(args.data / "val", 64, limit=args.val_images)) if args.val_images else None
    bundle = export_joint(state, args.out, NAME, train, str(args.data / "train"), DECODE, val,
                          made_by="python -m gecodec.train.joint_recipe", stages=stages)
    store_geometry(args.out, *measure_geometry(train[:GEOMETRY_IMAGES]))
    store_refinement(args.out, to_float(train[:REFINE_IMAGES]))
    print(f"wrote {args.out} (id {bundle.model_hex}) in {(time.monotonic() - started) / 60:.1f} min; "
          f"val GE PSNR {bundle.card['val'].get('ge_real', {}).get('psnr')} dB")


if __name__ == "__main__":
    main()
