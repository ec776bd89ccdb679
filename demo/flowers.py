"""`make demo DEMO_ARGS=--flowers`: build the demo catalog from the tutorial's flower photos.

For users who are online. The archive is downloaded once (resumably, size-checked), extracted
after every member has been checked, and turned into the same catalog.csv / categories.csv the
offline emoji catalog uses, so `import_catalog` treats both alike. Plain Python: no Django.
"""

from __future__ import annotations

import csv
import http.client
import random
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

FLOWERS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)
# The archive's top folder; each sub-folder is one class.
ARCHIVE_ROOT = "flower_photos"
# The real archive is about 220 MB; refusing anything far larger protects the disk from a wrong
# URL or a hostile server.
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024
# Streaming in 1 MB pieces keeps memory flat whatever the archive's size.
CHUNK_BYTES = 1024 * 1024
# A stalled connection fails instead of hanging the demo for ever.
DOWNLOAD_TIMEOUT_SECONDS = 60
IMAGE_SUFFIXES = (".jpg", ".jpeg")
PARENT_CATEGORY = {"slug": "flowers", "name": "Flowers",
                   "description": "Cut flowers and flowering plants.", "parent_slug": ""}

CATALOG_COLUMNS = ("sku", "title", "category_slug", "image", "labelled")
CATEGORY_COLUMNS = ("slug", "name", "description", "parent_slug")


class FlowersError(Exception):
    """The flower catalog could not be prepared; the message says what to do."""


class FlowersDownloadError(FlowersError):
    """The archive could not be downloaded (offline, server error, truncated transfer)."""


class UnsafeArchiveError(FlowersError):
    """The archive holds a member that would write outside its folder, or is not a plain file."""


def prepare_flowers_catalog(dest: Path, *, url: str = FLOWERS_URL, labelled_fraction: float = 0.6,
                            seed: int = 42) -> tuple[Path, Path]:
    """Download and extract the flower photos into ``dest`` and write the catalog CSVs there.

    Idempotent: when ``dest/flower_photos`` exists nothing is downloaded again; the CSVs are
    rewritten from the folder (same seed, same split).

    Args:
        dest: Folder for the archive, the extracted photos and the two CSV files.
        url: Where the ``.tgz`` lives (a test points this at a local server).
        labelled_fraction: Share of each class marked as labelled by a person; the rest is left
            for the classifier.
        seed: Makes the labelled split repeatable.

    Returns:
        ``(catalog_csv, categories_csv)``; image paths in the catalog are relative to its folder.

    Raises:
        FlowersDownloadError: The download failed; the message names the URL and the reason.
        UnsafeArchiveError: The archive would write outside ``dest`` or holds links/devices.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    photos = dest / ARCHIVE_ROOT
    if not photos.is_dir():
        archive = dest / f"{ARCHIVE_ROOT}.tgz"
        if not archive.exists():
            download(url, archive)
        extract_safely(archive, dest)
        archive.unlink()  # the extracted folder is what later runs check for
    return write_catalog_csvs(photos, dest, labelled_fraction=labelled_fraction, seed=seed)


def download(url: str, target: Path) -> Path:
    """Stream ``url`` to ``target``, resuming a partial ``.part`` file when the server allows.

    The file only gets its final name once its size matches what the server announced, so an
    interrupted download is never mistaken for a complete one.
    """
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "catalog-classifier-demo"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            resumed = response.status == 206
            total = _expected_total(response, already=have if resumed else 0)
            print(f"Downloading {url} ({_size_text(total)}"
                  f"{f', resuming at {_size_text(have)}' if resumed else ''})…", flush=True)
            written = _stream(response, part, append=resumed)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part file is already complete or stale
            part.unlink()
            return download(url, target)
        raise FlowersDownloadError(
            f"Downloading {url} failed: HTTP {exc.code} {exc.reason}. Check the URL, or run the "
            "demo without --flowers to use the bundled offline catalog."
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FlowersDownloadError(
            f"Could not download {url}: {reason}. The --flowers option needs internet access; "
            "run the demo without --flowers to use the bundled offline catalog. A partial "
            f"download is kept in {part} and resumed next time."
        ) from exc
    if total is not None and written != total:
        raise FlowersDownloadError(
            f"Download of {url} stopped at {written} of {total} bytes. Run the demo again to "
            "resume it."
        )
    part.replace(target)
    return target


def _expected_total(response, *, already: int) -> int | None:
    length = response.headers.get("Content-Length")
    total = already + int(length) if length and length.isdigit() else None
    if total is not None and total > MAX_ARCHIVE_BYTES:
        raise FlowersDownloadError(
            f"The server announced {_size_text(total)}, more than the "
            f"{_size_text(MAX_ARCHIVE_BYTES)} the flower archive could be. Check the URL."
        )
    return total


def _stream(response, part: Path, *, append: bool) -> int:
    """Copy the response body to ``part``; returns the file's size afterwards."""
    with part.open("ab" if append else "wb") as out:
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            if out.tell() > MAX_ARCHIVE_BYTES:
                raise FlowersDownloadError(
                    f"The download passed {_size_text(MAX_ARCHIVE_BYTES)}; stopped. Check the URL."
                )
        return out.tell()


def _size_text(size: int | None) -> str:
    return "unknown size" if size is None else f"{size / 1024 / 1024:.1f} MB"


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse a member that could write outside the extraction folder.

    Only plain files and folders under ``flower_photos/`` are accepted: no absolute paths, no
    ``..``, no links or devices (a link could point anywhere and a later member write through it).
    """
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or "\\" in member.name:
        raise UnsafeArchiveError(f"Refusing archive member {member.name!r}: it points outside "
                                 "the extraction folder. The archive is not the flower photos.")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"Refusing archive member {member.name!r}: only plain files and "
                                 "folders are allowed (no links or devices).")
    if path.parts[:1] != (ARCHIVE_ROOT,):
        raise UnsafeArchiveError(f"Refusing archive member {member.name!r}: everything must be "
                                 f"under {ARCHIVE_ROOT}/.")


def extract_safely(archive: Path, dest: Path) -> Path:
    """Check every member first, then extract into a temporary folder and move it in place.

    Nothing is written when any member is refused, and a crash mid-extraction leaves no half
    folder that a later run would take as complete.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
                # The "data" filter repeats the checks above inside tarfile itself.
                tar.extractall(tmp, members=members, filter="data")
                (Path(tmp) / ARCHIVE_ROOT).replace(dest / ARCHIVE_ROOT)
    except tarfile.TarError as exc:
        archive.unlink(missing_ok=True)  # a corrupt download is fetched again next time
        raise FlowersDownloadError(f"{archive} is not a readable .tgz archive ({exc}); it was "
                                   "deleted, run the demo again to download it anew.") from exc
    return dest / ARCHIVE_ROOT


def slug_for(folder_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", folder_name.lower()).strip("-")


def write_catalog_csvs(photos: Path, dest: Path, *, labelled_fraction: float,
                       seed: int) -> tuple[Path, Path]:
    """Write catalog.csv and categories.csv for the class folders under ``photos``."""
    classes = sorted(p for p in photos.iterdir() if p.is_dir())
    if not classes:
        raise FlowersError(f"{photos} holds no class folders; delete it and run again.")
    categories = [PARENT_CATEGORY]
    rows: list[dict[str, str]] = []
    for folder in classes:
        slug = slug_for(folder.name)
        categories.append({"slug": slug, "name": folder.name.replace("_", " ").capitalize(),
                           "description": f"Photos of {folder.name.replace('_', ' ')}.",
                           "parent_slug": PARENT_CATEGORY["slug"]})
        rows.extend(_class_rows(folder, slug, dest, labelled_fraction=labelled_fraction, seed=seed))
    catalog_csv, categories_csv = dest / "catalog.csv", dest / "categories.csv"
    _write_csv(catalog_csv, CATALOG_COLUMNS, rows)
    _write_csv(categories_csv, CATEGORY_COLUMNS, categories)
    return catalog_csv, categories_csv


def _class_rows(folder: Path, slug: str, dest: Path, *, labelled_fraction: float,
                seed: int) -> list[dict[str, str]]:
    images = sorted(p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    # At least one labelled image per class (so training sees every class) and, when there are
    # two or more, at least one left for the classifier.
    n_labelled = max(1, min(len(images) - 1, round(len(images) * labelled_fraction)))
    labelled = set(random.Random(f"{seed}:{slug}").sample(images, min(n_labelled, len(images))))
    name = folder.name.replace("_", " ").capitalize()
    return [
        {"sku": f"FLW-{slug.upper()}-{index:04d}", "title": f"{name}, photo {index}",
         "category_slug": slug, "image": image.relative_to(dest).as_posix(),
         "labelled": "1" if image in labelled else "0"}
        for index, image in enumerate(images, start=1)
    ]


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

