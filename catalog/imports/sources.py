"""Reading import files row by row, and fetching a row's image from an allowed folder or a URL."""

from __future__ import annotations

import csv
import io
import json
import posixpath
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

FORMATS = ("csv", "jsonl")
# Product photos above this are refused: far more than a shop image needs, and it keeps one bad
# row (or a huge URL) from filling memory or the bucket.
MAX_IMPORT_IMAGE_BYTES = 20 * 1024 * 1024
# A slow image server should fail its row, not stall the whole import.
URL_TIMEOUT_SECONDS = 15
# Formats Pillow may identify: the same set the classifier decodes.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# The header check refuses decompression bombs before anything is decoded.
MAX_IMPORT_IMAGE_PIXELS = 50_000_000
# Every image is decoded in full before it is stored; JPEGs at the smallest DCT scale still this
# many pixels a side (1/8 of a photo): the decoder still reads every block, so a truncated or
# corrupt file fails here, at a fraction of a full decode's time and memory.
CHECK_DECODE_SIDE = 64
# What Pillow's decoders raise on broken input (truncation is OSError; see the classifier's
# preprocessing for the same list).
_DECODE_FAILURES = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
                    SyntaxError, EOFError, struct.error, IndexError, KeyError)


@dataclass(frozen=True)
class RowError:
    """One problem in one row: shown to the operator as ``row N, column: message``."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column or 'row'}: {self.message}"


class ImageSourceError(Exception):
    """A row's image cannot be used; the message says how to fix it."""


def import_format(name: str, fmt: str | None = None) -> str:
    """The file's format from ``fmt`` or its name (``.jsonl``/``.ndjson`` vs anything else)."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"Unknown import format {fmt!r}: use csv or jsonl.")
        return fmt
    return "jsonl" if name.lower().endswith((".jsonl", ".ndjson")) else "csv"


def import_rows_read(stream: IO[bytes], *, fmt: str) -> Iterator[tuple[int, dict | RowError]]:
    """Yield ``(row number, values)`` per record, or ``(row number, RowError)`` for a bad line.

    Row numbers are what a spreadsheet shows: the CSV header is row 1. A UTF-8 byte order mark
    (from a spreadsheet export) is ignored. JSON Lines rows are numbered by line.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        if fmt == "csv":
            reader = csv.DictReader(text)
            for values in reader:
                yield reader.line_num, {k.strip(): v for k, v in values.items() if k}
        else:
            yield from _jsonl_rows(text)
    except UnicodeDecodeError as exc:
        yield 0, RowError(0, "", f"The file is not UTF-8 text ({exc}). Save it as UTF-8 CSV.")
    finally:
        text.detach()


def _jsonl_rows(text: IO[str]) -> Iterator[tuple[int, dict | RowError]]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowError(number, "", f"not valid JSON ({exc.msg}); one object a line")
            continue
        if not isinstance(values, dict):
            yield number, RowError(number, "", "each line must be a JSON object")
            continue
        yield number, values


def image_source_read(value: str, *, roots: Sequence[Path]) -> tuple[str, bytes]:
    """``(file name, bytes)`` of an image given as a path inside ``roots`` or an http(s) URL.

    A relative path is looked up in each root in turn. Paths are resolved (``..``, symlinks)
    before the check, so nothing outside the allowed folders is ever read.

    Raises:
        ImageSourceError: outside the roots, missing, too big, unreachable or not an image.
    """
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        name, data = _fetch_url(value)
    elif scheme and len(scheme) > 1:  # "C:" is a drive letter, not a scheme
        raise ImageSourceError(f"Unsupported image address {value!r}: give a file path inside "
                               "an import folder or an http(s) URL.")
    else:
        path = _resolve_in_roots(value, roots)
        if path.stat().st_size > MAX_IMPORT_IMAGE_BYTES:
            raise ImageSourceError(f"{value} is larger than {MAX_IMPORT_IMAGE_BYTES:,} bytes; "
                                   "save it smaller.")
        name, data = path.name, path.read_bytes()
    _check_image(value, data)
    return name, data


def _resolve_in_roots(value: str, roots: Sequence[Path]) -> Path:
    resolved_roots = [Path(root).resolve() for root in roots]
    given = Path(value)
    candidates = [given] if given.is_absolute() else [root / given for root in resolved_roots]
    escaped = False
    for candidate in candidates:
        path = candidate.resolve()
        if not any(path.is_relative_to(root) for root in resolved_roots):
            escaped = True
            continue
        if path.is_file():
            return path
    folders = ", ".join(str(root) for root in resolved_roots) or "(none configured)"
    if escaped:
        raise ImageSourceError(f"{value} is outside the allowed import folders ({folders}). "
                               "Move the image into one of them, or add its folder to "
                               "CATALOG_IMPORT_ROOTS (or pass --images-dir).")
    raise ImageSourceError(f"{value} was not found in the import folders ({folders}). Check "
                           "the path (relative to an import folder).")


def _fetch_url(url: str) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "catalog-classifier-import"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_IMPORT_IMAGE_BYTES:
                raise ImageSourceError(f"{url} is {int(length):,} bytes; the limit is "
                                       f"{MAX_IMPORT_IMAGE_BYTES:,}. Link a smaller image.")
            data = response.read(MAX_IMPORT_IMAGE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ImageSourceError(f"{url} answered HTTP {exc.code}; check the link.") from exc
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageSourceError(f"{url} could not be fetched ({reason}); check the link and "
                               "that the server is reachable.") from exc
    if len(data) > MAX_IMPORT_IMAGE_BYTES:
        raise ImageSourceError(f"{url} is larger than {MAX_IMPORT_IMAGE_BYTES:,} bytes; link a "
                               "smaller image.")
    name = posixpath.basename(urllib.parse.urlsplit(url).path) or "image"
    return name, data


def _check_image(value: str, data: bytes) -> None:
    """Decode the whole image before the file is stored: header (format, pixel count) first,
    then every pixel, so a truncated or corrupt file is this row's error, not a later failure
    in a classification job."""
    if not data:
        raise ImageSourceError(f"{value} is empty (0 bytes).")
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
            width, height = img.size
            if width * height > MAX_IMPORT_IMAGE_PIXELS:
                raise ImageSourceError(f"{value} is {width}x{height} pixels; resize it to at "
                                       f"most {MAX_IMPORT_IMAGE_PIXELS:,} pixels.")
            img.draft("RGB", (CHECK_DECODE_SIDE, CHECK_DECODE_SIDE))
            img.load()
    except _DECODE_FAILURES as exc:
        raise ImageSourceError(f"{value} is not a readable JPEG, PNG, GIF, WebP, BMP or TIFF "
                               f"image ({exc}): it may be truncated or corrupt. Export it again "
                               "and re-run the import.") from exc


def cell(values: dict[str, Any], *names: str) -> str | None:
    """The first present column of ``names`` as stripped text; ``None`` when none is present."""
    for name in names:
        if name in values:
            value = values[name]
            if value is None:
                return ""
            if isinstance(value, bool):
                return "1" if value else "0"
            return str(value).strip()
    return None
