"""Pictures of the results: rate-distortion curves (PSNR and MSE against bits per pixel) and reconstruction
grids laid out like the GE paper's Figure 4 (one row per method, one column per image)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def curve_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Split a codec's rows into curves: one per model (and Lasso basis) for the generative codecs, whose
    rate grows with bits and m along the curve, one more per model for its quality scale (entropy-coded
    files, and on a model with a quality ladder refinement layers too) and one for the default file plus each
    refinement level; one for the rest. Target-byte settings are table rows, not curve points."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        setting = row["setting"]
        if "target_bytes" in setting:
            continue
        label = ", ".join(str(setting[k]) for k in ("model", "basis") if k in setting)
        entropy_coded = "model" in setting and "quality" in setting  # gecodec's; a Pillow codec's quality is its own
        kind = ", --refine" if "refine" in setting else ", --quality" if entropy_coded else ""
        groups.setdefault(label + kind, []).append(row)
    return groups


def save_figure(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def floor_lines(ax: plt.Axes, floors: Sequence[dict], metric: str) -> None:
    """The generator floor of each G as a horizontal line, named by its bundle when there are several."""
    for i, floor in enumerate(floors):
        label = "generator floor: min_z ||G(z) - x||²" + (f" ({floor['setting']['model']})" if len(floors) > 1 else "")
        ax.axhline(floor[metric], color="black", linestyle=["--", ":", "-."][i % 3], linewidth=1, label=label)


def rd_plot(summaries: dict[str, list[dict]], metric: str, path: Path, floors: Sequence[dict] = (),
            title: str = "") -> None:
    """One PNG: ``metric`` ("psnr" or "mse") against bpp for every codec, with the generator floors as lines."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colours = plt.get_cmap("tab10").colors
    for c, (name, rows) in enumerate(summaries.items()):  # a colour per codec; a line style per model within it
        groups = curve_groups([r for r in rows if r["bpp"] is not None])
        for k, (label, group) in enumerate(groups.items()):
            group = sorted(group, key=lambda r: r["bpp"])
            ax.errorbar([r["bpp"] for r in group], [r[metric] for r in group],
                        yerr=[r[f"{metric}_ci95"] for r in group], color=colours[c % len(colours)],
                        linestyle=["-", "--", ":", "-."][k % 4], marker="os^Dv"[k % 5], markersize=3, capsize=2,
                        label=f"{name} ({label})" if label else name)
    floor_lines(ax, floors, metric)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks([t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]])
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel({"psnr": "PSNR, 8-bit RGB (dB)", "mse": "MSE, pixels in [-1, 1]"}[metric])
    if metric == "mse":
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    save_figure(fig, path)


def measurements_plot(rows: list[dict], path: Path, floors: Sequence[dict] = (), title: str = "") -> None:
    """The GE paper's Figure 6: MSE against the number of measurements m, one point per setting (model),
    with the generator floors as lines."""
    rows = sorted(rows, key=lambda r: r["setting"]["m"])
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ms = [r["setting"]["m"] for r in rows]
    ax.errorbar(ms, [r["mse"] for r in rows], yerr=[r["mse_ci95"] for r in rows], marker="o", capsize=3, label="GE")
    floor_lines(ax, floors, "mse")
    ax.legend(fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("measurements m")
    ax.set_ylabel("MSE, pixels in [-1, 1]")
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def reconstruction_grid(rows: list[tuple[str, np.ndarray]], path: Path, label_width: int = 150) -> None:
    """Rows of uint8 images (N, H, W, 3), each with its label on the left, in one PNG."""
    columns = max(len(images) for _, images in rows)
    h, w = rows[0][1].shape[1:3]
    canvas = Image.new("RGB", (label_width + columns * w, len(rows) * h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        draw.text((4, r * h + h // 2 - 6), label, fill=(0, 0, 0))
        for c, pixels in enumerate(images):
            canvas.paste(Image.fromarray(pixels), (label_width + c * w, r * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
