"""What an archive (formats/archive.md) costs a face beyond its .gec file's bytes.

    python -m bench.archive_overhead --n 10000 --checked 10000

Codes the first --n faces of the --data folders (by default CelebA's 4,000 validation faces, then training faces)
with the default model at its default quality, without the check, and the first --checked of them with it, so that
the report's columns hold real PSNRs; writes each set as an archive, as `gec encode -o X.parquet` does, and reads
back each column's compressed size from the Parquet footer. Writes bench/results/archive_overhead.json: for each
set, the bytes a face of the archive, of the bare .gec files and of each column, and the overhead, with what the
same files take as files of their own on a file system of 4 KiB blocks.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from gecodec.archive import ArchiveRow, write_archive
from gecodec.codec import Codec
from gecodec.fileio import write_bytes_atomic
from gecodec.image_encoding import encode_framed, frame_image
from gecodec.imageio import is_image_path

DATA = [Path("../shared/data/celeba64/val"), Path("../shared/data/celeba64/train")]
BLOCK = 4096  # a file system's block: what a file of its own costs at least


def coded(codec: Codec, images: list[Path], check: bool, batch_size: int = 64, **options: Any) -> list[ArchiveRow]:
    """The images' rows, coded (and checked) a batch at a time, as `gec encode` codes them (options: the rate and
    seed of Codec.encode_batch)."""
    rows = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        files = encode_framed(codec, [frame_image(codec, path) for path in chunk], check, batch_size, **options)
        rows += [ArchiveRow(path.name, data, report) for path, (data, report) in zip(chunk, files)]
    return rows


def measure(rows: list[ArchiveRow], folder: Path, name: str) -> dict:
    """One set's archive, written and taken apart: bytes a face in all, in .gec files and in each column."""
    path = folder / f"{name}.parquet"
    write_archive(path, rows)
    meta = pq.ParquetFile(path).metadata
    columns: dict[str, int] = {}
    for group in range(meta.num_row_groups):
        for index in range(meta.num_columns):
            column = meta.row_group(group).column(index)
            columns[column.path_in_schema] = columns.get(column.path_in_schema, 0) + column.total_compressed_size
    faces, archive = len(rows), path.stat().st_size
    gec = sum(len(row.gec) for row in rows)
    return {
        "faces": faces, "checked": rows[0].report is not None,
        "gec_bytes_per_face": round(gec / faces, 2), "archive_bytes_per_face": round(archive / faces, 2),
        "overhead": round(archive / gec - 1, 4),
        "column_bytes_per_face": {name: round(size / faces, 3) for name, size in columns.items()},
        "footer_and_headers_bytes": archive - sum(columns.values()),
        "as_4k_files_bytes_per_face": sum(math.ceil(len(row.gec) / BLOCK) * BLOCK for row in rows) / faces,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", default=DATA, help="folders of face crops, taken in order")
    parser.add_argument("--n", type=int, default=10_000, help="faces coded without the check")
    parser.add_argument("--checked", type=int, default=10_000, help="faces of those coded with the check")
    parser.add_argument("--model", default=None, help="model name, id or path (default: the default model)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/archive_overhead.json"))
    args = parser.parse_args(argv)
    images = [path for folder in args.data for path in sorted(folder.iterdir()) if is_image_path(path)][: args.n]
    codec = Codec(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        sets = [measure(coded(codec, images, check=False), Path(scratch), "unchecked"),
                measure(coded(codec, images[: args.checked], check=True), Path(scratch), "checked")]
    result = {"command": f"python -m bench.archive_overhead --n {args.n} --checked {args.checked}"
                         + (f" --model {args.model}" if args.model else ""),
              "model": codec.bundle.name, "data": [str(folder) for folder in args.data], "sets": sets}
    write_bytes_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
