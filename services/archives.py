"""ZIP archives of images: PNGs with their metadata, named by the server, stored
without recompression (PNG is compressed already), streamed as they are written."""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator

from models import Image
from services import storage

MANIFEST_FIELDS = ("file", "image_id", "task_id", "prompt", "negative_prompt", "width", "height",
                   "steps", "guidance", "seed", "scheduler", "model", "strength", "created_at")


class _Chunks(io.RawIOBase):
    """A write-only, non-seekable sink: zipfile then writes data descriptors, so the
    archive can be sent while it is being made."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def entry_name(image: Image) -> str:
    return f"{image.task_id}_{image.index}.png" if image.task_id else f"upload_{image.id}.png"


def entries(images: Iterable[Image]) -> list[tuple[str, str, dict]]:
    """(file path, entry name, manifest row) for each image, read from the database
    up front so that streaming needs no database session."""
    result = []
    for image in images:
        name = entry_name(image)
        params = image.task.parameters() if image.task else {}
        row = {k: params.get(k, "") for k in MANIFEST_FIELDS if k in params}
        row.update(file=name, image_id=image.id, task_id=image.task_id or "", width=image.width,
                   height=image.height, seed="" if image.seed is None else image.seed,
                   created_at=image.created_at.isoformat())
        result.append((str(storage.path_of(image)), name, row))
    return result


def stream_zip(items: list[tuple[str, str, dict]]) -> Iterator[bytes]:
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for path, name, _row in items:
            with open(path, "rb") as source, archive.open(name, "w") as target:
                while block := source.read(1 << 16):
                    target.write(block)
                    yield sink.take()
        manifest = io.StringIO()
        writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(row for _path, _name, row in items)
        archive.writestr("manifest.csv", manifest.getvalue())
    yield sink.take()
