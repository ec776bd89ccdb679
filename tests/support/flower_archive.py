"""A tiny flower_photos.tgz like TensorFlow's, and an HTTP handler that serves it with Range."""

from __future__ import annotations

import http.server
import io
import tarfile
from pathlib import Path

from PIL import Image

CLASSES = {"daisy": (240, 240, 240), "roses": (200, 20, 40), "tulips": (250, 160, 20)}
IMAGES_PER_CLASS = 4


def jpeg_bytes(rgb: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), rgb).save(buffer, "JPEG")
    return buffer.getvalue()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive(path: Path, *, extra: list[tarfile.TarInfo] | None = None,
                 images_per_class: int = IMAGES_PER_CLASS) -> Path:
    """A flower_photos.tgz laid out like the real one: class folders of JPEGs and LICENSE.txt."""
    with tarfile.open(path, "w:gz") as tar:
        add_bytes(tar, "flower_photos/LICENSE.txt", b"All images are CC-BY licensed.\n")
        for name, rgb in CLASSES.items():
            for index in range(images_per_class):
                add_bytes(tar, f"flower_photos/{name}/{1000 + index}_photo.jpg", jpeg_bytes(rgb))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files and honours ``Range: bytes=N-`` (which SimpleHTTPRequestHandler ignores)."""

    requests: list[dict[str, str]]

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.requests.append({"path": self.path, "range": self.headers.get("Range", "")})
        path = Path(self.translate_path(self.path.split("?")[0]))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if (header := self.headers.get("Range", "")).startswith("bytes="):
            start = int(header.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        # "?truncate" drops the connection half-way, as a flaky network would.
        end = len(data) // 2 if self.path.endswith("?truncate") else len(data)
        self.wfile.write(data[start:end])
        self.close_connection = True
