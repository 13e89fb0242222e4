"""Restoration by the latent search with an operator inside (the GE paper's applications): denoising,
deblurring, super-resolution and inpainting.

    ge:   z* = argmin_z ||EN(S(G(z))) - EN(x_dagger)||^2 + lam ||z||^2
    csgm: z* = argmin_z ||F(G(z)) - y||^2 + lam ||z||^2          (Bora et al. 2017, in pixel space)

and x_hat = G(z*). y = F(x*) is what was observed: x* with noise, blurred, shrunk, or with a region missing.
x_dagger is y at the model's size (bicubic upsampling for super-resolution, the paper's preconditioner).
S is the paper's adjustment: the identity for denoising and deblurring, the mask for inpainting, and for
super-resolution the same shrink and bicubic enlargement that made x_dagger, so that both sides of the
objective went through it. Inpainting keeps the known pixels and fills the missing ones from G(z*).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from PIL import Image

from gecodec.codec import Codec
from gecodec.errors import ImageError, OptionError
from gecodec.imageio import ImageInput, center_square, image_to_tensor, open_image, pixels_to_tensor, tensor_to_image
from gecodec.operators import (AdditiveNoise, Compose, Downsample, GaussianBlur, Identity, Mask, Operator,
                               Upsample, check_blur_sigma, check_factor, check_sigma)
from gecodec.options import BLUR_SIGMA, METHODS, NOISE_SIGMA, SUPERRES_FACTOR, TASKS
from gecodec.search import Progress, SearchOptions, latent_search

BOX_FRACTION = 30 / 64  # the default missing block: the paper's centred 30 x 30 in a 64 x 64 face


@dataclass(frozen=True)
class TaskParams:
    """What degraded the image. Sizes are in pixels of the image given to degrade or restore."""

    sigma: float = NOISE_SIGMA  # denoise: noise standard deviation, pixels in [-1, 1] (the paper's setting)
    blur_sigma: float = BLUR_SIGMA  # deblur: the Gaussian kernel's standard deviation
    factor: int = SUPERRES_FACTOR  # superres: the low-resolution image is 1/factor of the size
    box: tuple[int, int, int, int] | None = None  # inpaint: the missing box x, y, w, h
    mask: ImageInput | None = None  # inpaint: black where pixels are missing, white where known
    seed: int = 0  # the noise of degrade(task="denoise")

    def __post_init__(self) -> None:
        check_sigma(self.sigma)
        check_blur_sigma(self.blur_sigma)
        check_factor(self.factor)
        if self.box is not None and (len(self.box) != 4 or not all(isinstance(v, int) for v in self.box)):
            raise OptionError(f"a box is four integers x, y, w, h, got {self.box!r}")


def task_params(params: dict[str, Any]) -> TaskParams:
    """TaskParams from keyword arguments, with a clear error for a name it does not know."""
    unknown = set(params) - {f.name for f in fields(TaskParams)}
    if unknown:
        raise OptionError(f"unknown restoration parameter(s): {', '.join(sorted(unknown))}")
    return TaskParams(**params)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise OptionError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def full_mask(params: TaskParams, width: int, height: int) -> Mask:
    """The inpainting mask at an image's own size: from the mask image, the box, or the default centred block."""
    if params.mask is not None:
        if params.box is not None:
            raise OptionError("give a mask or a box, not both")
        picture = open_image(params.mask)
        if picture.size != (width, height):
            raise ImageError(f"the mask is {picture.size[0]}x{picture.size[1]}, the image is {width}x{height}")
        return Mask(torch.from_numpy(np.asarray(picture.convert("L")) / 255.0).float())
    if params.box is not None:
        return Mask.box(height, width, *params.box)
    side = max(1, round(BOX_FRACTION * min(width, height)))
    return Mask.box(height, width, (width - side) // 2, (height - side) // 2, side, side)


def degradation(task: str, params: TaskParams, width: int, height: int) -> Operator:
    """F, the degradation of task at an image's own size."""
    check_task(task)
    if task == "denoise":
        return AdditiveNoise(params.sigma, params.seed)
    if task == "deblur":
        return GaussianBlur(params.blur_sigma)
    if task == "superres":
        return Downsample(params.factor, "bicubic")
    return full_mask(params, width, height)


def degrade(image: ImageInput, task: str, **params: Any) -> Image.Image:
    """A test input: the image with noise, blurred, shrunk by the factor, or with the missing region grey.

    params: the fields of TaskParams (sigma, blur_sigma, factor, box, mask, seed).
    """
    picture = open_image(image)
    x = pixels_to_tensor(np.asarray(picture)).unsqueeze(0)
    y = degradation(task, task_params(params), *picture.size)(x)
    return tensor_to_image(y[0])


@dataclass
class Problem:
    """A batch of restorations in the model's space (S x S images)."""

    observed: torch.Tensor  # y = F(x*), (B, 3, h, w)
    forward: Operator  # F
    adjustment: Operator  # S
    preconditioned: torch.Tensor  # x_dagger, (B, 3, S, S)
    known: Mask | None = field(default=None)  # inpainting: the pixels to keep

    def to(self, device: torch.device) -> Problem:
        return Problem(self.observed.to(device), self.forward.to(device), self.adjustment.to(device),
                       self.preconditioned.to(device), self.known.to(device) if self.known is not None else None)


def make_problem(task: str, observed: torch.Tensor, params: TaskParams, mask: Mask | None = None,
                 blur_sigma: float | None = None) -> Problem:
    """The problem for observed images already in the model's space. mask and blur_sigma, where given, are
    the params' rescaled to that space (the blur's sigma is in pixels, so it scales with the image)."""
    check_task(task)
    if task == "denoise":
        return Problem(observed, Identity(), Identity(), observed)
    if task == "deblur":
        return Problem(observed, GaussianBlur(blur_sigma or params.blur_sigma), Identity(), observed)
    if task == "superres":
        down, up = Downsample(params.factor, "bicubic"), Upsample(params.factor, "bicubic")
        return Problem(observed, down, Compose(down, up), up(observed))
    if mask is None:
        mask = full_mask(params, observed.shape[-1], observed.shape[-2])
    return Problem(observed, mask, mask, observed, known=mask)


def solve(generator: torch.nn.Module, encoder: torch.nn.Module, problem: Problem, method: str, seeds: list[int],
          options: SearchOptions = SearchOptions(), progress: Progress | None = None) -> torch.Tensor:
    """x_hat (B, 3, S, S) on the CPU in [-1, 1] for a problem, by the GE or the CSGM objective."""
    if method not in METHODS:
        raise OptionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    device = next(generator.parameters()).device
    problem = problem.to(device)
    if method == "ge":
        with torch.no_grad():
            target = encoder(problem.preconditioned)
        result = latent_search(generator, lambda x: encoder(problem.adjustment(x)), target, seeds, options, progress)
    else:
        target = problem.observed.flatten(1)
        result = latent_search(generator, lambda x: problem.forward(x).flatten(1), target, seeds, options, progress)
    restored = result.images.float().clamp(-1, 1)
    if problem.known is not None:
        restored = problem.known.paste(problem.observed.float(), restored)
    return restored.cpu()


def model_space_image(picture: Image.Image, task: str, params: TaskParams, size: int) -> torch.Tensor:
    """The observed image (3, s, s) cropped and resized as gec encode does; a low-resolution image becomes
    size/factor pixels a side."""
    if task != "superres":
        return image_to_tensor(picture, size)
    if size % params.factor:
        raise OptionError(f"factor {params.factor} does not divide the model's size {size}")
    return image_to_tensor(picture, size // params.factor)


def model_space_mask(mask: Mask, size: int) -> Mask:
    """An image-size mask cropped and resized to the model's size, as the image is."""
    known = Image.fromarray((mask.mask[0, 0].numpy() * 255).astype(np.uint8))
    resized = center_square(known).resize((size, size), Image.Resampling.BILINEAR)
    return Mask(torch.from_numpy(np.asarray(resized) / 255.0).float())


def output_size(picture: Image.Image, task: str, params: TaskParams) -> tuple[int, int]:
    width, height = picture.size
    return (width * params.factor, height * params.factor) if task == "superres" else (width, height)


def finish(picture: Image.Image, restored: torch.Tensor, task: str, params: TaskParams, known: Mask | None) -> Image.Image:
    """The restored model-space image at the output size; inpainting keeps the input's known pixels as they were."""
    result = tensor_to_image(restored, output_size(picture, task, params))
    if known is None:
        return result
    keep = known.mask[0, 0].numpy()[..., None] > 0.5
    return Image.fromarray(np.where(keep, np.asarray(picture), np.asarray(result)))


def restore_images(codec: Codec, pictures: list[Image.Image], task: str, method: str = "ge", seed: int = 0,
                   options: SearchOptions = SearchOptions(), progress: Progress | None = None,
                   **params: Any) -> list[Image.Image]:
    """Restore images that share a size and a degradation, in one batch."""
    check_task(task)
    chosen = task_params(params)
    if len({p.size for p in pictures}) > 1:
        raise OptionError("images restored in one batch must share a size")
    width, height = pictures[0].size
    size = codec.image_size
    known = full_mask(chosen, width, height) if task == "inpaint" else None
    observed = torch.stack([model_space_image(p, task, chosen, size) for p in pictures])
    problem = make_problem(task, observed, chosen, model_space_mask(known, size) if known is not None else None,
                           blur_sigma=chosen.blur_sigma * size / min(width, height))
    restored = solve(codec.generator, codec.encoder, problem, method, [seed] * len(pictures), options, progress)
    return [finish(p, x, task, chosen, known) for p, x in zip(pictures, restored)]
