"""Catalog export: CSV (spreadsheet-ready) and JSON Lines, from the admin and the command."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.http import StreamingHttpResponse

from catalog.exports.table import COLUMNS, TableExport, catalog_export_stream
from catalog.models import ExportKind, ExportRecord, Product
from tests.exports.conftest import make_product

CHANGELIST = "/admin/catalog/product/"


def run_action(client, action: str, products) -> object:
    return client.post(CHANGELIST, {"action": action, "_selected_action": [p.pk for p in products]})


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
def test_admin_csv_export_streams_selected_products_with_bom_and_every_column(
        client, exporter, predicted_product, labelled_products):
    client.force_login(exporter)
    response = run_action(client, "export_selected_csv", [predicted_product, labelled_products[0]])
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    raw = body(response)
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["sku"] for r in rows] == sorted([predicted_product.sku, labelled_products[0].sku])
    row = next(r for r in rows if r["sku"] == predicted_product.sku)
    assert tuple(row) == COLUMNS
    assert row["title"] == "Crème brûlée, «deluxe»"
    assert (row["category_slug"], row["category_name"]) == ("red", "Red things")
    assert row["category_source"] == "classifier"
    assert row["predicted_category_slug"] == "red" and float(row["confidence"]) == 0.875
    assert json.loads(row["top_k"]) == [["red", 0.875], ["blue", 0.1]]
    assert row["review_status"] == "classified"
    assert row["image_url"].startswith("http://testserver/media/products/")


@pytest.mark.django_db
def test_admin_jsonl_export_gives_one_parsable_object_per_product(
        client, exporter, predicted_product, labelled_products):
    client.force_login(exporter)
    response = run_action(client, "export_selected_jsonl", labelled_products)
    lines = body(response).decode("utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    assert sorted(o["sku"] for o in objects) == sorted(p.sku for p in labelled_products)
    assert all(o["category_source"] == "person" and o["top_k"] == [] for o in objects)


@pytest.mark.django_db
def test_a_few_thousand_products_stream_in_many_chunks_with_every_row(client, exporter):
    Product.objects.bulk_create(Product(sku=f"BULK-{i:05d}", title=f"Bulk {i}")
                                for i in range(3000))
    client.force_login(exporter)
    response = client.post(CHANGELIST, {"action": "export_selected_csv", "select_across": "1",
                                        "index": "0", "_selected_action": ["1"]})
    assert response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) > 10  # streamed in pieces, not one whole-file string
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(rows) == 3000
    assert rows[0]["sku"] == "BULK-00000" and rows[-1]["sku"] == "BULK-02999"
    record = ExportRecord.objects.get()
    assert (record.kind, record.count, record.user) == (ExportKind.CATALOG_CSV, 3000, exporter)


@pytest.mark.django_db
def test_export_leaves_one_history_entry_saying_who_exported_how_many(
        client, exporter, labelled_products):
    client.force_login(exporter)
    body(run_action(client, "export_selected_csv", labelled_products))
    entry = LogEntry.objects.get()
    assert entry.user == exporter
    assert entry.change_message == "Exported 6 products as CSV"
    assert entry.get_edited_object() == ExportRecord.objects.get()


@pytest.mark.django_db
def test_staff_without_export_permission_cannot_export(client, viewer, labelled_products):
    client.force_login(viewer)
    response = run_action(client, "export_selected_csv", labelled_products)
    assert not getattr(response, "streaming", False)
    assert response.status_code in (200, 302)  # back to the list: the action is not offered
    assert ExportRecord.objects.count() == 0
    listing = client.get(CHANGELIST)
    assert b"export_selected_csv" not in listing.content


@pytest.mark.django_db
def test_command_exports_filtered_jsonl_to_stdout_and_records_it(categories):
    make_product("A-1", category=categories["red"], is_published=True)
    make_product("A-2", category=categories["red"], is_published=False)
    make_product("B-1", category=categories["blue"], is_published=True)
    out = io.StringIO()
    call_command("export_catalog", "--format", "jsonl", "--published-only", "--category", "red",
                 stdout=out, stderr=io.StringIO())
    assert [json.loads(line)["sku"] for line in out.getvalue().splitlines()] == ["A-1"]
    record = ExportRecord.objects.get()
    assert record.user is None and record.source == "command"
    assert record.actor.endswith("(command line)")
    assert record.filters == {"format": "jsonl", "published_only": True, "category": "red"}


@pytest.mark.django_db
def test_command_writes_csv_file_with_optional_bom(tmp_path, labelled_products):
    plain, with_bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    call_command("export_catalog", "--output", str(plain), stderr=io.StringIO())
    call_command("export_catalog", "--bom", "--output", str(with_bom), stderr=io.StringIO())
    assert not plain.read_bytes().startswith(b"\xef\xbb\xbf")
    assert with_bom.read_bytes().startswith(b"\xef\xbb\xbf")
    with open(with_bom, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and rows[0]["sku"] == "BLUE-0"


@pytest.mark.django_db
def test_unknown_format_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="csv, jsonl"):
        list(catalog_export_stream(TableExport(queryset=Product.objects.all(), fmt="xlsx")))
