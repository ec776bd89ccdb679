"""Duplicates on real photos with the real pretrained model; decisions; the find_duplicates CSV."""

import csv
import io

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command

from catalog.models import Product
from classifier.exceptions import DuplicatePermissionError
from classifier.models import DuplicateCandidate, DuplicateDecision, DuplicateDecisionKind
from classifier.services import (
    classification_job_run_sync,
    duplicate_pair_dismiss,
    duplicate_pair_unpublish_copy,
    similar_products,
    similarity_index_refresh,
)
from tests.support.pretrained import DEMO_IMAGES, photographed_again

pytestmark = [pytest.mark.slow]

# Two different items of each category (demo photos), and second copies of two of them under
# other SKUs: the lemon's published, the hammer's a draft.
PHOTOS = {"LEMON": "fruit/lemon-2.jpg", "GRAPES": "fruit/grapes-2.jpg",
          "HAMMER": "tools/hammer-2.jpg", "GEAR": "tools/gear-2.jpg",
          "CLUTCH": "clothing/clutch-bag-2.jpg", "DRESS": "clothing/dress-2.jpg"}


@pytest.fixture
def shop(pretrained_version, make_product, no_auto_classify):
    """The products, classified by the pretrained model (which stores their embeddings)."""
    products = {sku: make_product((DEMO_IMAGES / path).read_bytes(), sku=sku,
                                  title=sku.title(), is_published=True)
                for sku, path in PHOTOS.items()}
    for sku, published in (("LEMON", True), ("HAMMER", False)):
        again = photographed_again((DEMO_IMAGES / PHOTOS[sku]).read_bytes())
        products[f"{sku}-COPY"] = make_product(again, sku=f"{sku}-COPY", title=f"{sku} again",
                                               is_published=published)
    classification_job_run_sync(products=[p.pk for p in products.values()])
    return products


def pair_skus(pairs) -> set[tuple[str, str]]:
    return {tuple(sorted((p.product_a.sku, p.product_b.sku))) for p in pairs}


def test_same_photo_again_is_a_duplicate_other_items_and_categories_are_not(shop):
    outcome = similarity_index_refresh()

    assert outcome.count == len(shop)
    candidates = DuplicateCandidate.objects.select_related("product_a", "product_b")
    assert pair_skus(candidates) == {("LEMON", "LEMON-COPY"), ("HAMMER", "HAMMER-COPY")}
    assert all(c.score >= 0.92 for c in candidates)


def test_similar_products_of_a_photo_put_its_copy_first(shop):
    similarity_index_refresh()
    results = similar_products(product=shop["LEMON"], limit=3)
    assert results[0].product.sku == "LEMON-COPY" and results[0].score > 0.92
    assert results[1].score < 0.92
    # The hammer's copy is a draft: the storefront never sees it, staff do.
    assert "HAMMER-COPY" not in [r.product.sku for r in similar_products(product=shop["HAMMER"])]
    staff = similar_products(product=shop["HAMMER"], published_only=False, limit=1)
    assert staff[0].product.sku == "HAMMER-COPY"


def test_find_duplicates_prints_csv_and_leaves_out_decided_pairs(shop, capsys):
    duplicate_pair_dismiss(product_a=shop["HAMMER"], product_b=shop["HAMMER-COPY"])

    call_command("find_duplicates")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["sku_a"], r["sku_b"]) for r in rows] == [("LEMON", "LEMON-COPY")]
    assert rows[0]["title_b"] == "LEMON again" and float(rows[0]["score"]) >= 0.92
    assert (rows[0]["published_a"], rows[0]["published_b"]) == ("1", "1")

    call_command("find_duplicates", "--include-decided")
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    call_command("find_duplicates", "--threshold", "0.999")
    assert capsys.readouterr().out.strip().splitlines() == [",".join(
        ["sku_a", "sku_b", "score", "title_a", "title_b", "published_a", "published_b", "id_a",
         "id_b"])]
    # A read-only command: the shared scan was not written.
    assert not DuplicateCandidate.objects.exists()


def test_find_duplicates_refuses_a_threshold_out_of_range(shop):
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("find_duplicates", "--threshold", "1.5")


def test_unpublishing_the_copy_is_logged_and_the_pair_is_settled(shop, admin_user):
    similarity_index_refresh()
    decision = duplicate_pair_unpublish_copy(copy=shop["LEMON-COPY"], original=shop["LEMON"],
                                             user=admin_user)

    assert not Product.objects.get(pk=shop["LEMON-COPY"].pk).is_published
    assert Product.objects.get(pk=shop["LEMON"].pk).is_published
    assert (decision.kind, decision.unpublished, decision.decided_by) == (
        DuplicateDecisionKind.COPY_UNPUBLISHED, shop["LEMON-COPY"], admin_user)
    assert decision.score >= 0.92
    entry = LogEntry.objects.get(object_id=str(shop["LEMON-COPY"].pk))
    assert entry.get_change_message() == "Unpublished: duplicate of LEMON"
    similarity_index_refresh(force=True)
    assert DuplicateDecision.objects.count() == 1


def test_deciding_needs_the_change_product_permission(shop, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    with pytest.raises(DuplicatePermissionError, match="Can change product"):
        duplicate_pair_unpublish_copy(copy=shop["LEMON-COPY"], original=shop["LEMON"],
                                      user=viewer)
    assert Product.objects.get(pk=shop["LEMON-COPY"].pk).is_published
    assert not DuplicateDecision.objects.exists()
