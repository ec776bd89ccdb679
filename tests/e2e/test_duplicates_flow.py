"""The duplicates page in a real browser, on real photos and the real pretrained model.

Demo products of three categories (every variant of a few items) and a second upload of one
photo under another SKU are classified by EfficientNet-Lite0 (the pretrained default, at 64x64
so it trains in a minute) in this process, which stores their embeddings; the index rebuild
scans them for duplicates. Chromium then settles two pairs with the page's buttons, and the
database must hold each decision; the product page shows the look-alikes.

Run: ``.venv/bin/python -m pytest -q -m slow tests/e2e/test_duplicates_flow.py``
(``SAVE_README_SCREENSHOTS=1`` refreshes docs/screenshots/duplicates-page.png).
"""

from __future__ import annotations

import csv

import pytest
from django.core.files.base import ContentFile

from tests.e2e.browser import DEMO_CATALOG, PASSWORD, login, screenshot
from tests.support.pretrained import photographed_again

ITEMS = {"fruit": ("lemon", "grapes", "peach", "pear"),
         "tools": ("hammer", "gear", "clamp", "chains"),
         "clothing": ("clutch-bag", "dress", "gloves", "goggles")}
COPY_OF = "FRU-1F34B-1"  # "Lemon, variant 1", uploaded again as another product

pytestmark = [pytest.mark.slow]


@pytest.fixture
def scanned_shop(transactional_db, pretrained_version):
    """The products, classified (embedded) and scanned; returns them by SKU."""
    from catalog.models import Category, Product
    from classifier.services import classification_job_run_sync, similarity_index_refresh

    with (DEMO_CATALOG / "catalog.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle)
                if r["image"].split("/")[-1].rsplit("-", 1)[0] in ITEMS.get(r["category_slug"], ())]
    products = {}
    for row in rows:
        product = Product(sku=row["sku"], title=row["title"], is_published=True,
                          category=Category.objects.get(slug=row["category_slug"]),
                          category_source="person")
        product.image.save(row["image"].split("/")[-1],
                           ContentFile((DEMO_CATALOG / row["image"]).read_bytes()), save=False)
        product.save()
        products[row["sku"]] = product
    original = products[COPY_OF]
    copy = Product(sku="LEMON-NEW", title="Lemon (new upload)", is_published=True)
    copy.image.save("lemon-upload.jpg", ContentFile(photographed_again(
        original.image.open("rb").read())), save=False)
    copy.save()
    products[copy.sku] = copy
    classification_job_run_sync(products=[p.pk for p in products.values()])
    assert similarity_index_refresh().pairs >= 2
    return products


def side_skus(pair) -> list[str]:
    return [text.split()[0] for text in pair.locator(".review-sku").all_inner_texts()]


def test_a_person_settles_duplicates_on_the_page_and_the_database_keeps_each_decision(
        browser_page, scanned_shop, live_server, django_user_model):
    from django.contrib.admin.models import LogEntry

    from catalog.models import Product
    from classifier.models import DuplicateDecision, DuplicateDecisionKind

    page, base = browser_page, live_server.url
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    login(page, base, "admin")
    page.goto(f"{base}/admin/catalog/product/")
    page.click("text=Likely duplicates")
    pairs = page.locator(".duplicate-pair")
    count = pairs.count()
    original, copy = scanned_shop[COPY_OF], scanned_shop["LEMON-NEW"]
    lemon = page.locator(f"#pair-{original.pk}-{copy.pk}")
    assert side_skus(lemon) == [COPY_OF, "LEMON-NEW"]
    assert all(img.evaluate("i => i.naturalWidth > 0") for img in pairs.first.locator("img").all())
    screenshot(page, "duplicates-page")

    # The new upload is the copy: unpublish it (its side is the second, higher id).
    lemon.locator(".duplicate-side").nth(1).get_by_role("button", name="Unpublish this copy"
                                                        ).click()
    page.wait_for_selector("text=LEMON-NEW unpublished as a duplicate of FRU-1F34B-1.")
    assert not Product.objects.get(pk=copy.pk).is_published
    assert LogEntry.objects.get(object_id=str(copy.pk)).get_change_message() == (
        f"Unpublished: duplicate of {COPY_OF}")

    # Re-staged photos of one item (the demo's variants): a shop may list both on purpose.
    variants = page.locator(".duplicate-pair").first
    skus = side_skus(variants)
    assert skus[0].rsplit("-", 1)[0] == skus[1].rsplit("-", 1)[0]  # one item, two variants
    variants.get_by_role("button", name="Not a duplicate").click()
    page.wait_for_selector("text=not duplicates; the pair will not be listed again")
    assert page.locator(".duplicate-pair").count() == count - 2
    decision = DuplicateDecision.objects.get(kind=DuplicateDecisionKind.NOT_DUPLICATE)
    assert {decision.product_a.sku, decision.product_b.sku} == set(skus)

    # The original's page shows its look-alikes: the unpublished copy among them, marked.
    page.goto(f"{base}/admin/catalog/product/{original.pk}/change/")
    look_alikes = page.locator(".similar-row li").all_inner_texts()
    assert any("LEMON-NEW" in text and "draft" in text for text in look_alikes)
    screenshot(page, "product-similar")
