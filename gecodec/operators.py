"""Operators on image batches (B, 3, H, W) in [-1, 1] as nn.Modules: the Gaussian measurements of cs mode, and
the degradations and adjustments S of restoration. forward applies the operator; adjoint applies its transpose
where it is linear. Parameters (matrices, masks, kernels) are buffers, so they follow .to(device).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from gecodec.errors import OptionError
from gecodec.search import STREAM_MATRIX, derived_seed

RESAMPLING = ("box", "bilinear", "bicubic")
MAX_SIGMA = 2.0  # noise: beyond this the signal (range 2) is lost
MAX_BLUR_SIGMA = 16.0


class Operator(nn.Module):
    """One interface for every operator: forward(x) applies it; adjoint(y) applies the transpose (linear ones)."""

    linear = True

    def input_shape(self, output_shape: torch.Size) -> tuple[int, ...]:
        """The shape of x for an output of this shape (the adjoint's output shape)."""
        return tuple(output_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """S^T y. S is linear, so S^T y is the gradient of <S x, y> with respect to x at any x: autograd gives
        the exact transpose of whatever forward does, padding and antialiasing included."""
        if not self.linear:
            raise OptionError(f"{type(self).__name__} is not linear, so it has no adjoint")
        with torch.enable_grad():
            x = torch.zeros(self.input_shape(y.shape), dtype=y.dtype, device=y.device, requires_grad=True)
            (gradient,) = torch.autograd.grad((self(x) * y).sum(), x)
        return gradient


class Identity(Operator):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class GaussianMeasurement(Operator):
    """y = A x for a flattened image x, with A (m, n) i.i.d. N(0, 1/n) regenerated from a seed.

    The 1/n variance makes mean(y^2) about mean(x^2), so the search objective is on the same scale as a
    pixel MSE. A is drawn on the CPU so every device sees the same matrix; it is never stored in a file.
    """

    def __init__(self, count: int, image_size: int, seed: int) -> None:
        super().__init__()
        self.image_size = image_size
        n = 3 * image_size * image_size
        rng = torch.Generator().manual_seed(derived_seed(seed, STREAM_MATRIX))
        self.register_buffer("matrix", torch.randn(count, n, generator=rng).div_(n**0.5))  # in place: no 2nd copy

    def input_shape(self, output_shape: torch.Size) -> tuple[int, ...]:
        return (output_shape[0], 3, self.image_size, self.image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.matrix.T


class Mask(Operator):
    """S(x) = x * M: M is 1 where pixels are known and 0 in the missing region, one mask (H, W) or one per image
    (B, H, W)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        if mask.ndim not in (2, 3):
            raise OptionError(f"a mask is (H, W) or (B, H, W), got shape {tuple(mask.shape)}")
        self.register_buffer("mask", (mask.reshape(-1, 1, *mask.shape[-2:]) > 0.5).float())

    @classmethod
    def box(cls, height: int, width: int, x: int, y: int, w: int, h: int) -> Mask:
        """The box of w x h pixels with its top-left corner at (x, y) is missing."""
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise OptionError(f"box {x},{y},{w},{h} (x,y,w,h) does not fit in a {width}x{height} image")
        mask = torch.ones(height, width)
        mask[y : y + h, x : x + w] = 0
        return cls(mask)

    @classmethod
    def centred_box(cls, size: int, side: int) -> Mask:
        """A centred side x side block is missing (the GE paper's 30 x 30 block in a 64 x 64 face)."""
        start = (size - side) // 2
        return cls.box(size, size, start, start, side, side)

    @classmethod
    def strokes(cls, height: int, width: int, seed: int = 0, count: int = 4, thickness: float = 0.08) -> Mask:
        """count random strokes (polylines of thickness * the shorter side) are missing; seeded."""
        rng = np.random.default_rng(seed)
        picture = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(picture)
        line_width = max(1, round(thickness * min(width, height)))
        for _ in range(count):
            points = rng.uniform(0, 1, size=(int(rng.integers(2, 5)), 2)) * (width - 1, height - 1)
            draw.line([tuple(p) for p in points], fill=0, width=line_width, joint="curve")
        return cls(torch.from_numpy(np.asarray(picture) / 255.0).float())

    def matched(self, x: torch.Tensor) -> torch.Tensor:
        """The mask for a batch x: one mask for all, or one per image, each repeated k times when x repeats
        every image k times (as the latent search does for its restarts)."""
        if x.shape[-2:] != self.mask.shape[-2:]:
            raise OptionError(f"mask is {self.mask.shape[-1]}x{self.mask.shape[-2]}, image is {x.shape[-1]}x{x.shape[-2]}")
        masks = len(self.mask)
        if masks == 1 or masks == len(x):
            return self.mask
        if len(x) % masks:
            raise OptionError(f"{masks} masks do not fit a batch of {len(x)} images")
        return self.mask.repeat_interleave(len(x) // masks, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.matched(x)

    def paste(self, known: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        """Known pixels from known, missing ones from filled."""
        mask = self.matched(known)
        return known * mask + filled * (1 - mask)


def check_blur_sigma(sigma: float) -> None:
    if not 0 < sigma <= MAX_BLUR_SIGMA:
        raise OptionError(f"blur sigma must be in (0, {MAX_BLUR_SIGMA:g}] pixels, got {sigma!r}")


class GaussianBlur(Operator):
    """Convolution of each channel with a rotationally symmetric Gaussian kernel (size x size, standard
    deviation sigma pixels; size defaults to 2 ceil(3 sigma) + 1), with reflected borders."""

    def __init__(self, sigma: float, size: int | None = None) -> None:
        super().__init__()
        check_blur_sigma(sigma)
        size = size if size is not None else 2 * math.ceil(3 * sigma) + 1
        if size < 1 or size % 2 == 0:
            raise OptionError(f"blur kernel size must be a positive odd number, got {size!r}")
        offsets = torch.arange(size, dtype=torch.float64) - size // 2
        line = torch.exp(-offsets.pow(2) / (2 * sigma**2))
        kernel = torch.outer(line, line)  # exp(-(i^2 + j^2) / 2 sigma^2): depends on the radius only
        self.sigma, self.size = sigma, size
        self.register_buffer("kernel", (kernel / kernel.sum()).float().expand(3, 1, size, size).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.size // 2
        if pad >= min(x.shape[-2:]):
            raise OptionError(f"a {self.size}x{self.size} blur kernel is too large for {x.shape[-1]}x{x.shape[-2]} images")
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x
        return F.conv2d(padded, self.kernel.to(x.dtype), groups=3)


def check_factor(factor: int) -> None:
    if not (isinstance(factor, int) and factor >= 1):
        raise OptionError(f"the scale factor must be a positive integer, got {factor!r}")


def check_resampling(method: str) -> None:
    if method not in RESAMPLING:
        raise OptionError(f"unknown resampling {method!r}; choose one of {', '.join(RESAMPLING)}")


class Resample(Operator):
    """Shared by Downsample and Upsample: an integer factor and box, bilinear or bicubic resampling."""

    def __init__(self, factor: int, method: str = "bicubic") -> None:
        super().__init__()
        check_factor(factor)
        check_resampling(method)
        self.factor, self.method = factor, method


class Downsample(Resample):
    """Shrink by an integer factor: box (mean of each factor x factor block), or antialiased bilinear or bicubic."""

    def input_shape(self, output_shape: torch.Size) -> tuple[int, ...]:
        return (*output_shape[:-2], output_shape[-2] * self.factor, output_shape[-1] * self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.factor or width % self.factor:
            raise OptionError(f"factor {self.factor} does not divide the image size {width}x{height}")
        if self.method == "box":
            return F.avg_pool2d(x, self.factor)
        size = (height // self.factor, width // self.factor)
        return F.interpolate(x, size=size, mode=self.method, align_corners=False, antialias=True)


class Upsample(Resample):
    """Enlarge by an integer factor, the match of Downsample: box repeats pixels, bilinear and bicubic
    interpolate (the GE paper upsamples low-resolution inputs with bicubic interpolation)."""

    def input_shape(self, output_shape: torch.Size) -> tuple[int, ...]:
        return (*output_shape[:-2], output_shape[-2] // self.factor, output_shape[-1] // self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "box":
            return F.interpolate(x, scale_factor=self.factor, mode="nearest")
        return F.interpolate(x, scale_factor=self.factor, mode=self.method, align_corners=False)


def check_sigma(sigma: float) -> None:
    if not 0 <= sigma <= MAX_SIGMA:
        raise OptionError(f"noise sigma must be in [0, {MAX_SIGMA:g}] (pixels in [-1, 1]), got {sigma!r}")


class SeededNoise(Operator):
    """Shared by the noise operators: a sigma (in the [-1, 1] pixel scale) and a seed for N(0, 1) draws."""

    linear = False

    def __init__(self, sigma: float, seed: int = 0) -> None:
        super().__init__()
        check_sigma(sigma)
        self.sigma, self.seed = sigma, seed

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """N(0, 1) values shaped like x, drawn on the CPU from the seed, so they are the same on every device."""
        return torch.randn(tuple(x.shape), generator=torch.Generator().manual_seed(self.seed)).to(x.device, x.dtype)


class AdditiveNoise(SeededNoise):
    """x + sigma * n, n ~ N(0, 1) per value, seeded."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * self.noise(x)


class MultiplicativeNoise(SeededNoise):
    """Speckle: intensities u = (x + 1) / 2 in [0, 1] become u * (1 + sigma * n), n ~ N(0, 1), seeded."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2 * (1 + self.sigma * self.noise(x)) * 2 - 1


class Compose(Operator):
    """Apply operators in order: Compose(a, b)(x) = b(a(x))."""

    def __init__(self, *operators: Operator) -> None:
        super().__init__()
        self.operators = nn.ModuleList(operators)
        self.linear = all(op.linear for op in operators)

    def input_shape(self, output_shape: torch.Size) -> tuple[int, ...]:
        shape = tuple(output_shape)
        for op in reversed(self.operators):
            shape = op.input_shape(torch.Size(shape))
        return shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.operators:
            x = op(x)
        return x
