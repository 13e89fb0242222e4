"""Rate-distortion results on two sources of faces side by side: CelebA's validation crops and faces in photos.

    python -m bench rd --data ../shared/data/celeba64/val --n 256 --store bench/results/store --out bench/results/rd
    python -m bench photos --data runs/lfw64 --n 128 --out bench/results/photos-lfw
    python -m bench.by_source --source "CelebA validation crops=bench/results/rd" \\
        --source "LFW validation people=bench/results/photos-lfw" --models faces64-default --out bench/results/by-source

Reads each folder's CODEC.json (CompressAI's layout, written by python -m bench) and writes table.md (bytes,
PSNR and same-person share of each setting on each source; ge-photo, the photo path with the face's position in
each file, exists only for photos) and rd.png (PSNR and same person against bytes: a colour per codec, a line
style per source).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.plots import save_figure  # noqa: E402
from bench.presets import rate_sweep  # noqa: E402

CODECS = ("ge", "ge-photo", "webp", "avif", "jpeg")
Curve = list[dict]  # one dict per setting: setting, bytes, psnr, same_person


def read_curves(folder: Path, codecs: tuple[str, ...], models: list[str] | None, size: int) -> dict[str, Curve]:
    """Each codec's settings in a results folder, with bytes from bits per pixel; ge settings only of ``models``
    and only its --quality and --target-bytes ones."""
    curves = {}
    for codec in codecs:
        path = folder / f"{codec}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        results = data["results"]
        rows = [{"setting": setting, "bytes": bpp * size * size / 8, "psnr": psnr, "same_person": same}
                for setting, bpp, psnr, same in zip(data["settings"], results["bpp"], results["psnr-rgb"],
                                                    results["identity-match"])]
        if models is not None:
            rows = [row for row in rows if row["setting"].get("model", models[0]) in models]
        if codec.startswith("ge"):  # what users choose between, not the paper's fixed-length settings
            rows = [row for row in rows if rate_sweep(row["setting"])]
        curves[codec] = sorted(rows, key=lambda row: row["bytes"])
    return curves


def setting_label(setting: dict) -> str:
    """The model (ge's settings name one) and the rest of the setting."""
    rest = ", ".join(f"{key} {value}" for key, value in setting.items() if key not in ("model", "m"))
    return f"{setting['model']}: {rest}" if "model" in setting else rest


def side_by_side(sources: dict[str, dict[str, Curve]]) -> str:
    """One row per codec and setting; per source its bytes, PSNR and same-person share ("-" where it has none)."""
    names = list(sources)
    header = "| codec | setting | " + " | ".join(f"{n}: bytes | PSNR (dB) | same person" for n in names) + " |"
    lines = [header, "|---|---|" + "---|---|---|" * len(names)]
    codecs = dict.fromkeys(codec for curves in sources.values() for codec in curves)
    for codec in codecs:
        settings = {json.dumps(row["setting"], sort_keys=True): row["setting"]
                    for curves in sources.values() for row in curves.get(codec, [])}
        for key, setting in settings.items():
            cells = []
            for curves in sources.values():
                row = next((r for r in curves.get(codec, []) if json.dumps(r["setting"], sort_keys=True) == key), None)
                cells += ["-"] * 3 if row is None else [
                    f"{row['bytes']:.1f}", f"{row['psnr']:.2f}",
                    "-" if row["same_person"] is None else f"{100 * row['same_person']:.0f}%"]
            lines.append(f"| {codec} | {setting_label(setting)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(sources: dict[str, dict[str, Curve]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=120)
    colours = dict(zip(CODECS, plt.get_cmap("tab10").colors))
    for style, (source, curves) in zip(("-", "--", ":"), sources.items()):
        for codec, rows in curves.items():
            x = [row["bytes"] for row in rows]
            for ax, key, scale in ((axes[0], "psnr", 1), (axes[1], "same_person", 100)):
                y = [None if row[key] is None else scale * row[key] for row in rows]
                ax.plot(x, y, linestyle=style, marker="o", markersize=3, color=colours.get(codec),
                        label=f"{codec}, {source}")
    for ax, label in zip(axes, ("PSNR, 8-bit RGB (dB)", "same person by dlib (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("bytes per face (whole file)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", required=True, metavar="NAME=FOLDER",
                        help="a source's name and its results folder (python -m bench ... --out FOLDER)")
    parser.add_argument("--models", nargs="+", default=None, help="the ge models to show (default: all)")
    parser.add_argument("--size", type=int, default=64, help="the faces' side, for bytes from bits per pixel")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sources = {}
    for item in args.source:
        name, _, folder = item.partition("=")
        if not name or not Path(folder).is_dir():
            parser.error(f"--source {item!r} is not NAME=FOLDER with an existing folder")
        sources[name] = read_curves(Path(folder), CODECS, args.models, args.size)
        if not sources[name]:
            parser.error(f"{folder}: none of {', '.join(CODECS)} has results there")
    args.out.mkdir(parents=True, exist_ok=True)
    table = side_by_side(sources)
    (args.out / "table.md").write_text(table)
    plot(sources, args.out / "rd.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
