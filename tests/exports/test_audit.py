"""Who may export, and the read-only audit trail every export leaves."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from catalog.exports.records import EXPORT_PRODUCT_PERMISSION, user_can_export
from catalog.models import ExportRecord, Product
from tests.exports.conftest import staff_user


@pytest.mark.django_db
def test_export_needs_staff_view_and_export_permissions(django_user_model):
    full = staff_user(django_user_model, "full", "catalog.view_product", "catalog.export_product")
    no_export = staff_user(django_user_model, "noexp", "catalog.view_product")
    no_view = staff_user(django_user_model, "noview", "catalog.export_product")
    not_staff = staff_user(django_user_model, "customer", "catalog.view_product",
                           "catalog.export_product")
    not_staff.is_staff = False
    allowed = {u.username: user_can_export(u, Product, extra_permission=EXPORT_PRODUCT_PERMISSION)
               for u in (full, no_export, no_view, not_staff)}
    assert allowed == {"full": True, "noexp": False, "noview": False, "customer": False}


@pytest.mark.django_db
def test_export_records_are_listed_read_only_in_the_admin(admin_client, tmp_path):
    call_command("export_catalog", "--output", str(tmp_path / "c.csv"), stderr=io.StringIO())
    record = ExportRecord.objects.get()
    listing = admin_client.get("/admin/catalog/exportrecord/")
    assert listing.status_code == 200 and record.actor.encode() in listing.content
    assert admin_client.get("/admin/catalog/exportrecord/add/").status_code == 403
    detail = admin_client.get(f"/admin/catalog/exportrecord/{record.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert admin_client.get(f"/admin/catalog/exportrecord/{record.pk}/delete/").status_code == 403
