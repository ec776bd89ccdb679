"""Catalog import: idempotent by SKU, per-row errors, allowed folders only, nothing half-written."""

from __future__ import annotations

import io
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from catalog.imports.products import catalog_import
from catalog.imports.sources import RowError, import_rows_read
from catalog.models import Category, CategorySource, ExportRecord, Product
from tests.exports.conftest import make_product, staff_user
from tests.support.database import refuse_inserts_titled
from tests.support.tiny_model import solid_color_jpeg

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def images_dir(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, rgb in {"red.jpg": (220, 10, 10), "blue.jpg": (10, 10, 220)}.items():
        (folder / name).write_bytes(solid_color_jpeg(rgb))
    (folder / "notes.jpg").write_bytes(b"this is not an image")
    return folder


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def run_import(path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_catalog", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.django_db
def test_import_creates_products_and_a_second_run_changes_nothing(tmp_path, categories,
                                                                 images_dir, settings):
    source = write_csv(tmp_path / "c.csv", """
sku,title,description,category_slug,image,published,price
R-1,Red mug,A mug,red,red.jpg,1,12.50
B-1,Blue mug,,blue,blue.jpg,0,
N-1,No photo,,,,yes,3
""")
    out, _ = run_import(source, "--images-dir", str(images_dir))
    assert "3 created, 0 changed, 0 unchanged, 0 rows with errors" in out
    red = Product.objects.get(sku="R-1")
    assert (red.title, red.description, red.is_published, str(red.price)) == (
        "Red mug", "A mug", True, "12.50")
    assert red.category == categories["red"] and red.category_source == CategorySource.PERSON
    assert red.image.open("rb").read() == (images_dir / "red.jpg").read_bytes()
    files_after_first = stored_files(settings)
    out, _ = run_import(source, "--images-dir", str(images_dir))
    assert "0 created, 0 changed, 3 unchanged" in out
    assert stored_files(settings) == files_after_first  # no image stored twice


@pytest.mark.django_db
def test_changed_row_updates_only_that_product(tmp_path, categories, images_dir):
    source = write_csv(tmp_path / "c.csv", "sku,title,category_slug,image\n"
                                           "R-1,Red mug,red,red.jpg\nB-1,Blue mug,blue,blue.jpg")
    run_import(source, "--images-dir", str(images_dir))
    write_csv(source, "sku,title,category_slug,image\n"
                      "R-1,Red mug XL,red,red.jpg\nB-1,Blue mug,blue,red.jpg")
    out, _ = run_import(source, "--images-dir", str(images_dir))
    assert "0 created, 2 changed, 0 unchanged" in out
    assert Product.objects.get(sku="R-1").title == "Red mug XL"
    assert (Product.objects.get(sku="B-1").image.open("rb").read()
            == (images_dir / "red.jpg").read_bytes())


@pytest.mark.django_db
def test_bad_rows_are_reported_by_row_and_column_and_write_nothing(tmp_path, categories,
                                                                  images_dir, settings):
    source = write_csv(tmp_path / "c.csv", """
sku,title,category_slug,image,price
OK-1,Fine,red,red.jpg,1
BAD-1,Unknown category,purple,blue.jpg,1
BAD-2,Broken image,red,notes.jpg,1
BAD-3,Bad price,red,blue.jpg,cheap
,No sku,red,,
OK-1,Duplicate,red,,
""")
    with pytest.raises(CommandError, match="5 rows had errors"):
        run_import(source, "--images-dir", str(images_dir))
    assert list(Product.objects.values_list("sku", flat=True)) == ["OK-1"]
    assert len(stored_files(settings)) == 1  # only OK-1's photo: no orphan from a bad row
    report = catalog_import(rows=import_rows_read(source.open("rb"), fmt="csv"),
                            roots=[images_dir], dry_run=True)
    cells = {(e.row, e.column) for e in report.errors}
    assert cells == {(3, "category_slug"), (4, "image"), (5, "price"), (6, "sku"), (7, "sku")}
    assert "purple" in next(e.message for e in report.errors if e.row == 3)


@pytest.mark.django_db
def test_a_truncated_jpeg_is_refused_at_import_with_a_row_error(tmp_path, categories,
                                                                images_dir, settings):
    fixture = REPO_ROOT / "tests" / "fixtures" / "images" / "truncated.jpg"
    (images_dir / "cut.jpg").write_bytes(fixture.read_bytes())  # its header alone looks fine
    source = write_csv(tmp_path / "c.csv", """
sku,title,category_slug,image
CUT-1,Cut off,red,cut.jpg
OK-1,Fine,red,red.jpg
""")
    report = catalog_import(rows=import_rows_read(source.open("rb"), fmt="csv"),
                            roots=[images_dir])
    (error,) = report.errors
    assert (error.row, error.column) == (2, "image") and "truncated" in error.message
    assert list(Product.objects.values_list("sku", flat=True)) == ["OK-1"]
    assert len(stored_files(settings)) == 1


@pytest.mark.django_db
def test_a_row_failing_in_the_database_leaves_neither_product_nor_image_file(
        tmp_path, categories, images_dir, settings):
    refuse_inserts_titled("Explodes")
    source = write_csv(tmp_path / "c.csv", "sku,title,category_slug,image\n"
                                           "F-1,Explodes,red,red.jpg\nF-2,Fine,blue,blue.jpg")
    with pytest.raises(CommandError, match="1 rows had errors"):
        run_import(source, "--images-dir", str(images_dir))
    assert list(Product.objects.values_list("sku", flat=True)) == ["F-2"]
    assert [p.read_bytes() for p in stored_files(settings)] == [
        (images_dir / "blue.jpg").read_bytes()]  # F-1's stored photo was removed again


@pytest.mark.django_db
def test_image_paths_escaping_the_allowed_folders_are_rejected(tmp_path, categories, images_dir):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(solid_color_jpeg((1, 1, 1)))
    source = write_csv(tmp_path / "c.csv", f"""
sku,title,image
E-1,Dot dot,../secret.jpg
E-2,Absolute,{secret}
E-3,Scheme,file://{secret}
""")
    report = catalog_import(rows=import_rows_read(source.open("rb"), fmt="csv"),
                            roots=[images_dir])
    assert [(e.row, e.column) for e in report.errors] == [(2, "image"), (3, "image"), (4, "image")]
    assert "outside the allowed import folders" in report.errors[0].message
    assert "outside the allowed import folders" in report.errors[1].message
    assert Product.objects.count() == 0


@pytest.mark.django_db
def test_dry_run_reports_what_would_change_and_writes_nothing(tmp_path, categories, images_dir):
    source = write_csv(tmp_path / "c.csv", "sku,title,image\nD-1,Dry,red.jpg")
    out, _ = run_import(source, "--images-dir", str(images_dir), "--dry-run")
    assert "Dry run: would have 1 created" in out
    assert Product.objects.count() == 0 and ExportRecord.objects.count() == 0


@pytest.mark.django_db
def test_jsonl_rows_import_and_bad_json_lines_are_reported(tmp_path, categories):
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps({"sku": "J-1", "title": "Jay", "category_slug": "blue",
                                  "published": True, "price": 2.5}) + "\n{not json\n[1]\n")
    report = catalog_import(rows=import_rows_read(source.open("rb"), fmt="jsonl"), roots=[])
    assert report.created == 1 and [e.row for e in report.errors] == [2, 3]
    product = Product.objects.get(sku="J-1")
    assert product.is_published and product.price == Decimal("2.50")
    again = catalog_import(rows=import_rows_read(source.open("rb"), fmt="jsonl"), roots=[])
    assert (again.created, again.changed, again.unchanged) == (0, 0, 1)


@pytest.mark.django_db
def test_demo_catalog_loads_with_categories_and_unlabelled_rows_get_no_category(tmp_path):
    demo = REPO_ROOT / "demo" / "catalog"
    lines = (demo / "catalog.csv").read_text(encoding="utf-8").splitlines()
    labelled = next(line for line in lines[1:] if line.endswith(",1"))
    unlabelled = next(line for line in lines[1:] if line.endswith(",0"))
    subset = write_csv(tmp_path / "subset.csv", "\n".join([lines[0], labelled, unlabelled]))
    out, _ = run_import(subset, "--categories", str(demo / "categories.csv"))
    assert "Products: 2 created" in out and "Categories:" in out
    assert Category.objects.filter(parent__isnull=False).exists()
    with_label = Product.objects.get(sku=labelled.split(",")[0])
    without = Product.objects.get(sku=unlabelled.split(",")[0])
    assert with_label.category_source == CategorySource.PERSON and with_label.image
    assert without.category is None and without.category_source == CategorySource.NONE
    assert without.image
    out, _ = run_import(subset, "--categories", str(demo / "categories.csv"))
    assert "Products: 0 created, 0 changed, 2 unchanged" in out
    assert "Categories: 0 created, 0 changed" in out


@pytest.mark.django_db
def test_unlabelled_row_keeps_an_existing_category(tmp_path, categories):
    make_product("K-1", category=categories["red"])
    source = write_csv(tmp_path / "c.csv", "sku,title,category_slug,labelled\n"
                                           "K-1,Product K-1,blue,0")
    out, _ = run_import(source)
    assert "1 unchanged" in out and Product.objects.get(sku="K-1").category == categories["red"]


class _ImageHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/red.jpg":
            data = solid_color_jpeg((200, 0, 0))
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/huge.jpg":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_images_are_fetched_from_urls_with_a_size_limit(tmp_path, categories, image_server):
    source = write_csv(tmp_path / "c.csv", f"""
sku,title,image
U-1,From URL,{image_server}/red.jpg
U-2,Too big,{image_server}/huge.jpg
U-3,Missing,{image_server}/nope.jpg
""")
    report = catalog_import(rows=import_rows_read(source.open("rb"), fmt="csv"), roots=[])
    assert report.created == 1 and Product.objects.get(sku="U-1").image
    messages = {e.row: e.message for e in report.errors}
    assert "1,000,000,000 bytes" in messages[3] and "HTTP 404" in messages[4]


@pytest.mark.django_db
def test_admin_import_page_previews_then_imports_and_reports_row_errors(
        client, django_user_model, categories, settings, images_dir):
    settings.CATALOG_IMPORT_ROOTS = [images_dir]
    editor = staff_user(django_user_model, "editor", "catalog.add_product",
                        "catalog.change_product", "catalog.view_product")
    client.force_login(editor)
    listing = client.get("/admin/catalog/product/")
    assert b"/admin/catalog/product/import/" in listing.content
    csv_bytes = b"sku,title,category_slug,image\nA-1,Admin,red,red.jpg\nA-2,Bad,nope,\n"

    def post(dry_run: bool):
        data = {"products": SimpleUploadedFile("c.csv", csv_bytes, "text/csv")}
        if dry_run:
            data["dry_run"] = "on"
        return client.post("/admin/catalog/product/import/", data)

    preview = post(dry_run=True)
    assert b"Dry run: would have 1 created" in preview.content and Product.objects.count() == 0
    response = post(dry_run=False)
    assert response.status_code == 200 and b"unknown" not in response.content
    assert b"no category &#x27;nope&#x27;" in response.content
    assert list(Product.objects.values_list("sku", flat=True)) == ["A-1"]
    record = ExportRecord.objects.get()
    assert record.user == editor and record.count == 1 and record.skipped == 1


@pytest.mark.django_db
def test_staff_without_add_permission_cannot_open_the_import_page(client, viewer):
    client.force_login(viewer)
    assert client.get("/admin/catalog/product/import/").status_code == 403


def test_row_error_reads_as_row_column_message():
    assert str(RowError(4, "image", "missing")) == "row 4, image: missing"
