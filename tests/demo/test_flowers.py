"""The --flowers catalog builder, downloading a tiny flower_photos.tgz from a loopback server."""

from __future__ import annotations

import csv
import socket
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from demo.flowers import (
    FlowersDownloadError,
    UnsafeArchiveError,
    download,
    prepare_flowers_catalog,
)
from tests.support.flower_archive import CLASSES, IMAGES_PER_CLASS, make_archive


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_downloads_extracts_and_writes_catalog_csvs_with_paths_relative_to_the_csv(
        flower_server, tmp_path):
    base, served, _ = flower_server
    make_archive(served / "flower_photos.tgz")
    dest = tmp_path / "flowers"

    catalog_csv, categories_csv = prepare_flowers_catalog(dest, url=f"{base}/flower_photos.tgz")

    columns, rows = read_rows(catalog_csv)
    assert columns == ["sku", "title", "category_slug", "image", "labelled"]
    assert len(rows) == len(CLASSES) * IMAGES_PER_CLASS
    assert len({row["sku"] for row in rows}) == len(rows)
    for row in rows:
        image = catalog_csv.parent / row["image"]
        assert not Path(row["image"]).is_absolute()
        assert image.is_file() and image.parent.name == row["category_slug"]
    # The seeded split: round(4 * 0.6) = 2 labelled and 2 left for the classifier in each class.
    split = Counter((row["category_slug"], row["labelled"]) for row in rows)
    assert split == {(name, flag): 2 for name in CLASSES for flag in ("0", "1")}

    columns, categories = read_rows(categories_csv)
    assert columns == ["slug", "name", "description", "parent_slug"]
    assert [(c["slug"], c["parent_slug"]) for c in categories] == [
        ("flowers", ""), ("daisy", "flowers"), ("roses", "flowers"), ("tulips", "flowers")]
    assert not (dest / "flower_photos.tgz").exists()  # the archive is removed once extracted


def test_second_run_skips_the_download_and_writes_the_same_split(flower_server, tmp_path):
    base, served, requests = flower_server
    make_archive(served / "flower_photos.tgz")
    dest = tmp_path / "flowers"
    catalog_csv, _ = prepare_flowers_catalog(dest, url=f"{base}/flower_photos.tgz", seed=7)
    first = catalog_csv.read_text()

    prepare_flowers_catalog(dest, url=f"{base}/flower_photos.tgz", seed=7)

    assert len(requests) == 1
    assert catalog_csv.read_text() == first
    labelled = {r["sku"] for r in read_rows(catalog_csv)[1] if r["labelled"] == "1"}
    prepare_flowers_catalog(dest, url=f"{base}/flower_photos.tgz", seed=8)
    assert len(requests) == 1
    assert {r["sku"] for r in read_rows(catalog_csv)[1] if r["labelled"] == "1"} != labelled


def test_partial_download_is_resumed_with_a_range_request(flower_server, tmp_path):
    base, served, requests = flower_server
    archive = make_archive(served / "flower_photos.tgz")
    data = archive.read_bytes()
    target = tmp_path / "flower_photos.tgz"
    (tmp_path / "flower_photos.tgz.part").write_bytes(data[:100])

    download(f"{base}/flower_photos.tgz", target)

    assert requests[-1]["range"] == "bytes=100-"
    assert target.read_bytes() == data
    assert not (tmp_path / "flower_photos.tgz.part").exists()


@pytest.mark.parametrize("name", ["../evil", "flower_photos/../../evil", "/tmp/evil"])
def test_archive_member_outside_the_folder_is_refused_and_nothing_is_extracted(
        flower_server, tmp_path, name):
    base, served, _ = flower_server
    evil = tarfile.TarInfo(name)
    evil.size = 4
    make_archive(served / "flower_photos.tgz", extra=[evil])
    dest = tmp_path / "deep" / "flowers"

    with pytest.raises(UnsafeArchiveError, match="outside"):
        prepare_flowers_catalog(dest, url=f"{base}/flower_photos.tgz")

    assert not (dest / "flower_photos").exists()
    assert not (dest.parent / "evil").exists() and not (tmp_path / "evil").exists()


def test_archive_with_a_symlink_member_is_refused(flower_server, tmp_path):
    base, served, _ = flower_server
    link = tarfile.TarInfo("flower_photos/daisy/link.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    make_archive(served / "flower_photos.tgz", extra=[link])

    with pytest.raises(UnsafeArchiveError, match="links"):
        prepare_flowers_catalog(tmp_path / "flowers", url=f"{base}/flower_photos.tgz")

    assert not (tmp_path / "flowers" / "flower_photos").exists()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_url_gives_a_clear_error_naming_the_offline_alternative(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/flower_photos.tgz"

    with pytest.raises(FlowersDownloadError) as caught:
        prepare_flowers_catalog(tmp_path / "flowers", url=url)

    message = str(caught.value)
    assert url in message and "without --flowers" in message
    assert not (tmp_path / "flowers" / "flower_photos").exists()


def test_missing_file_on_the_server_reports_the_http_status(flower_server, tmp_path):
    base, _, _ = flower_server

    with pytest.raises(FlowersDownloadError, match="HTTP 404"):
        prepare_flowers_catalog(tmp_path / "flowers", url=f"{base}/nothing.tgz")


def test_truncated_transfer_is_reported_and_kept_for_resuming(flower_server, tmp_path):
    base, served, requests = flower_server
    data = make_archive(served / "flower_photos.tgz").read_bytes()
    target = tmp_path / "flower_photos.tgz"

    with pytest.raises(FlowersDownloadError, match="resume"):
        download(f"{base}/flower_photos.tgz?truncate", target)
    assert not target.exists()
    assert (tmp_path / "flower_photos.tgz.part").stat().st_size == len(data) // 2

    download(f"{base}/flower_photos.tgz", target)
    assert requests[-1]["range"] == f"bytes={len(data) // 2}-"
    assert target.read_bytes() == data
