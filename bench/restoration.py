"""The restoration benchmark: the GE paper's four tasks on a folder of faces, GE and CSGM against classical
baselines.

    python -m bench restore --data ../shared/data/celeba64/val --n 64            (or: gec bench restore ...)

Each task degrades the images as the paper does (SETTINGS), stores them as 8-bit images (as a user would
have them), restores them with every method of the task (METHODS) and scores the result against the original:
MSE ([-1, 1]), PSNR (8-bit) and SSIM, with 95% confidence intervals. The degraded input itself is a row too.
Writes OUT/table.md and OUT/grid-TASK.png; per-image records (resumable) go to STORE/records/restore-TASK.jsonl.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage import restoration as skr

from bench.harness import Records, check_store, distortion, reference_records, save_decodes, setting_key, timed
from bench.identity import face_identity
from bench.plots import reconstruction_grid
from bench.report import format_cell, summarise
from gecodec.bundle import load_model
from gecodec.codec import Codec, resolve_device
from gecodec.errors import GecError
from gecodec.imageio import pixels_to_tensor, tensor_to_pixels
from gecodec.operators import AdditiveNoise, GaussianBlur
from gecodec.restoration import Problem, TaskParams, degradation, make_problem, solve
from gecodec.search import SearchOptions
from gecodec.train.data import load_named_images, to_float
from gecodec.train.distributed import describe_hardware

RESULTS = Path(__file__).parent / "results" / "restore"
SCRATCH = Path("runs/bench/restore")

# The paper's settings: noise sigma 0.4 ([-1, 1] pixels), a Gaussian lowpass blur, 64 -> 16 -> 64, and a
# centred 30 x 30 hole in a 64 x 64 face (TaskParams' default box).
SETTINGS = {"denoise": TaskParams(sigma=0.4), "deblur": TaskParams(blur_sigma=1.5), "superres": TaskParams(factor=4),
            "inpaint": TaskParams()}

Baseline = Callable[[Problem, TaskParams], torch.Tensor]


def per_image(work: Callable[[np.ndarray], np.ndarray]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Run a scikit-image function on each image as H x W x 3 floats in [0, 1]."""
    def run(images: torch.Tensor) -> torch.Tensor:
        unit = [((x.movedim(0, -1).double() + 1) / 2).numpy() for x in images]
        return torch.stack([torch.from_numpy(np.asarray(work(u))).movedim(-1, 0).float() * 2 - 1 for u in unit])
    return run


def per_channel(work: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: np.stack([work(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def blur_kernel(problem: Problem) -> np.ndarray:
    assert isinstance(problem.forward, GaussianBlur)
    return problem.forward.kernel[0, 0].double().numpy()


def nl_means(problem: Problem, params: TaskParams) -> torch.Tensor:
    sigma = params.sigma / 2  # in [0, 1] units; h = 0.8 sigma is scikit-image's advice for fast mode
    return per_image(lambda u: skr.denoise_nl_means(u, patch_size=5, patch_distance=6, h=0.8 * sigma, sigma=sigma,
                                                    channel_axis=-1))(problem.observed)


def total_variation(problem: Problem, params: TaskParams) -> torch.Tensor:
    return per_image(lambda u: skr.denoise_tv_chambolle(u, weight=0.6 * params.sigma / 2, channel_axis=-1))(problem.observed)


def deconvolve(work: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Baseline:
    """A per-channel deconvolution with the true kernel. scikit-image's assume zero or circular borders where
    the blur reflected them, so each channel is padded by reflection first and cropped after."""
    def run(problem: Problem, params: TaskParams) -> torch.Tensor:
        psf = blur_kernel(problem)
        pad = psf.shape[0]
        return per_image(per_channel(lambda c: work(np.pad(c, pad, mode="reflect"), psf)[pad:-pad, pad:-pad]))(
            problem.observed)
    return run


# scikit-image's default 50 iterations; Wiener with its regularisation estimated from each image (seeded).
richardson_lucy = deconvolve(lambda c, psf: skr.richardson_lucy(c, psf, num_iter=50))
wiener = deconvolve(lambda c, psf: skr.unsupervised_wiener(c, psf, rng=0)[0])


def bicubic(problem: Problem, params: TaskParams) -> torch.Tensor:
    return problem.preconditioned.clamp(-1, 1)


def biharmonic(problem: Problem, params: TaskParams) -> torch.Tensor:
    assert problem.known is not None
    missing = problem.known.mask[0, 0].numpy() < 0.5
    return per_image(lambda u: skr.inpaint_biharmonic(u, missing, channel_axis=-1))(problem.observed)


BASELINES: dict[str, dict[str, Baseline]] = {
    "denoise": {"nl-means": nl_means, "total-variation": total_variation},
    "deblur": {"richardson-lucy": richardson_lucy, "wiener": wiener},
    "superres": {"bicubic": bicubic},
    "inpaint": {"biharmonic": biharmonic},
}
# "input" scores the degraded image itself; for super-resolution that is the bicubic baseline.
METHODS = {task: [*(["input"] if task != "superres" else []), *baselines, "csgm", "ge"]
           for task, baselines in BASELINES.items()}


def observe(task: str, images: torch.Tensor, first_index: int, params: TaskParams) -> torch.Tensor:
    """The degraded images as 8-bit pictures; the noise of image i is seeded by i."""
    if task == "denoise":
        noisy = torch.cat([AdditiveNoise(params.sigma, seed=first_index + i)(x[None]) for i, x in enumerate(images)])
    else:
        noisy = degradation(task, params, images.shape[-1], images.shape[-2])(images)
    return pixels_to_tensor(tensor_to_pixels(noisy))


def restore_with(method: str, task: str, problem: Problem, codec: Codec, options: SearchOptions) -> torch.Tensor:
    if method == "input":
        return problem.preconditioned.clamp(-1, 1)
    if method in ("ge", "csgm"):
        return solve(codec.generator, codec.encoder, problem, method, [0] * len(problem.observed), options)
    return BASELINES[task][method](problem, SETTINGS[task])


def run_task(task: str, codec: Codec, images: torch.Tensor, names: list[str], store: Path, args: argparse.Namespace,
             options: SearchOptions, device_name: str) -> Records:
    records = Records(store / "records" / f"restore-{task}.jsonl")
    for start in range(0, len(images), args.batch_size):
        batch, batch_names = images[start : start + args.batch_size], names[start : start + args.batch_size]
        todo = [m for m in METHODS[task] if any((setting_key({"method": m}), n) not in records.done for n in batch_names)]
        if not todo:
            continue
        problem = make_problem(task, observe(task, batch, start, SETTINGS[task]), SETTINGS[task])
        for method in todo:
            seconds, restored = timed(codec.device, restore_with, method, task, problem, codec, options)
            records.add(reference_records({"method": method}, batch_names, distortion(restored, batch), seconds,
                                          device_name))
            if start == 0:
                save_decodes(store / "decoded" / f"restore-{task}" / f"{method}.npy", restored[: args.keep])
        print(f"{task}: {min(start + args.batch_size, len(images))}/{len(images)} images", file=sys.stderr, flush=True)
    return records.only([{"method": m} for m in METHODS[task]], names)


def table(results: dict[str, Records]) -> str:
    lines = ["| task | method | images | PSNR (dB) | MSE ([-1, 1]) | SSIM | time per image (s) |",
             "|---|---|---|---|---|---|---|"]
    for task, records in results.items():
        rows = {r["setting"]["method"]: r for r in summarise(records)}
        for method in METHODS[task]:
            if method in rows:
                r = rows[method]
                lines.append(f"| {task} | {method} | {r['images']} | {format_cell(r['psnr'], r['psnr_ci95'])} | "
                             f"{format_cell(r['mse'], r['mse_ci95'], 4)} | {format_cell(r['ssim'], r['ssim_ci95'], 3)} | "
                             f"{format_cell(r['decode_s'], digits=3)} |")
    return "\n".join(lines) + "\n"


def grid(task: str, images: torch.Tensor, store: Path, out: Path, keep: int) -> None:
    rows = [("original", tensor_to_pixels(images[:keep]))]
    for method in METHODS[task]:
        path = store / "decoded" / f"restore-{task}" / f"{method}.npy"
        if path.exists():
            rows.append((method, np.load(path)))
    reconstruction_grid(rows, out / f"grid-{task}.png", label_width=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench restore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder (or .tar/.zip) of images")
    parser.add_argument("--tasks", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--n", type=int, default=None, help="use the first N images")
    parser.add_argument("--model", default=None, help="bundle (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: runs/bench/restore, or with --refresh bench/results/restore)")
    parser.add_argument("--refresh", action="store_true", help="write the committed results, bench/results/restore")
    parser.add_argument("--store", type=Path, default=None, help="per-image records and kept restorations (default: --out)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=SearchOptions.iters)
    parser.add_argument("--restarts", type=int, default=SearchOptions.restarts)
    parser.add_argument("--keep", type=int, default=8, help="images shown in the grids")
    args = parser.parse_args(argv)
    args.out = args.out or (RESULTS if args.refresh else SCRATCH)
    store = args.store or args.out
    try:
        options = SearchOptions(iters=args.iters, restarts=args.restarts)
        codec = Codec(load_model(args.model), resolve_device(args.device))
        check_store(store, codec.image_size, options, codec.bundle.model_hex)  # its settings do not name the model
        face_identity()  # loads dlib's models now: if they are missing, the run stops here with one line
        uint8, names = load_named_images(args.data, codec.image_size, limit=args.n)
    except GecError as exc:
        print(f"bench restore: error: {exc}", file=sys.stderr)
        return 1
    images = to_float(uint8)
    device_name = describe_hardware(codec.device)
    results = {task: run_task(task, codec, images, names, store, args, options, device_name) for task in args.tasks}
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(results)
    (args.out / "table.md").write_text(text)
    for task in args.tasks:
        grid(task, images, store, args.out, args.keep)
    print(text + f"results in {args.out}")
    return 0
