"""The review page in a real browser: a person decides products by keyboard, the database agrees.

Demo products of four categories are imported, a tiny model is trained on the labelled ones and
the unlabelled ones are classified in this process (real LiteRT inference, the same chunk code
the workers run), then sent to review with the admin's own service. Chromium drives the page
with keys only (1/2/3, A, N + the category list, S), as an operator would, and the database
must hold each choice as a person's, with a line in the admin history.

Run: ``.venv/bin/python -m pytest -q -m slow tests/e2e/test_review_flow.py -s``
"""

from __future__ import annotations

import csv
import shutil
import time

import pytest
from django.core.management import call_command

from tests.e2e.browser import DEMO_CATALOG, PASSWORD, login, screenshot, spread, write_csv

CATEGORIES = ["fruit", "drinks", "tools", "clothing"]
# Enough to train a model whose predictions differ from product to product (the screenshots
# show them), still under a minute on two cores.
LABELLED_PER_CATEGORY = 15
# Every unlabelled demo product of these categories: more than one page of cards (48), so the
# flow also loads the next page.
REVIEWED_BY_KEYS = 10
MEASURED = 50
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.slow]


@pytest.fixture
def review_queue(tmp_path, transactional_db):
    """Import, train a tiny model, classify the unlabelled products and send them to review.

    Returns each reviewed product's right category by SKU.
    """
    from catalog.models import CategorySource, Product
    from classifier.services import classification_job_run_sync, products_send_to_review

    folder = tmp_path / "catalog"
    with (DEMO_CATALOG / "catalog.csv").open(newline="", encoding="utf-8") as handle:
        demo_rows = [row for row in csv.DictReader(handle) if row["category_slug"] in CATEGORIES]
    rows = []
    for slug in CATEGORIES:
        of_category = [row for row in demo_rows if row["category_slug"] == slug]
        rows += spread([r for r in of_category if r["labelled"] == "1"], LABELLED_PER_CATEGORY)
        rows += [r for r in of_category if r["labelled"] == "0"]
    for row in rows:
        (folder / row["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_CATALOG / row["image"], folder / row["image"])
    write_csv(folder / "catalog.csv", rows)
    shutil.copyfile(DEMO_CATALOG / "categories.csv", folder / "categories.csv")
    call_command("import_catalog", str(folder / "catalog.csv"),
                 "--categories", str(folder / "categories.csv"), "--images-dir", str(folder))
    call_command("train_classifier", "--quantization", "float32", "--seed", "1", "--activate",
                 "--name", "first")
    unlabelled = Product.objects.exclude(category_source=CategorySource.PERSON)
    classification_job_run_sync(products=unlabelled, scope="test: unlabelled")
    # The operator doubts every one of them (the admin's "Send to review" action).
    products_send_to_review(products=unlabelled)
    # What a person who knows the shop would choose: the demo catalog's own category.
    return {row["sku"]: row["category_slug"] for row in rows if row["labelled"] == "0"}


def card_order(page) -> list[int]:
    return page.eval_on_selector_all(".review-card", "cards => cards.map(c => +c.dataset.pk)")


def wait_until_saved(page, decided: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('.review-card.decided').length >= n"
        " && !document.querySelector('.review-card.pending, .review-card.failed')", arg=decided)


def top_labels(pk: int) -> list[str]:
    from catalog.models import Product

    return [entry["label"] for entry in Product.objects.get(pk=pk).prediction_top_k]


def pick_from_tree(page, pk: int, slug: str) -> None:
    """"None of these": N opens the card's category tree, choose, Enter saves."""
    page.keyboard.press("n")
    page.select_option(f"#pick-{pk}", slug)
    page.keyboard.press("Enter")


def decide_as_someone_who_knows(page, pk: int, slug: str) -> None:
    """The key of the right category when the model offers it, else the category tree."""
    offered = top_labels(pk)[:3]
    if slug in offered:
        page.keyboard.press(str(offered.index(slug) + 1))
    else:
        pick_from_tree(page, pk, slug)


def test_a_person_reviews_products_by_keyboard_and_the_database_keeps_each_choice(
        browser_page, review_queue, live_server, django_user_model):
    from django.contrib.admin.models import CHANGE, LogEntry

    from catalog.models import Category, CategorySource, Product, ReviewStatus

    page, base = browser_page, live_server.url
    truth = review_queue
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    assert len(truth) > 48
    login(page, base, "admin")
    screenshot(page, "dashboard")

    page.goto(f"{base}/admin/catalog/product/review/")
    cards = card_order(page)
    assert len(cards) == 48
    page.wait_for_function("document.activeElement.classList.contains('review-card')")
    sku = dict(Product.objects.filter(pk__in=cards).values_list("pk", "sku"))

    # The first row: the right category, by its key or from the tree.
    expected = {pk: truth[sku[pk]] for pk in cards[:5]}
    for pk in cards[:5]:
        decide_as_someone_who_knows(page, pk, truth[sku[pk]])
    wait_until_saved(page, 5)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "review-page")

    # Then every key once: S skips card 6 (it stays in the queue); 1, 2, 3, A, and N + tree.
    page.keyboard.press("s")
    for pk, key in zip(cards[6:10], ["1", "2", "3", "a"], strict=True):
        page.keyboard.press(key)
        expected[pk] = top_labels(pk)[0 if key == "a" else int(key) - 1]
    outside = Category.objects.exclude(slug__in=top_labels(cards[10])[:3]).filter(
        children__isnull=True).first()
    pick_from_tree(page, cards[10], outside.slug)
    expected[cards[10]] = outside.slug
    wait_until_saved(page, REVIEWED_BY_KEYS)

    assert len(expected) == REVIEWED_BY_KEYS
    for pk, slug in expected.items():
        product = Product.objects.select_related("category").get(pk=pk)
        assert (product.category.slug, product.category_source, product.review_status) == (
            slug, CategorySource.PERSON, ReviewStatus.CLASSIFIED), product.sku
    assert Product.objects.get(pk=cards[5]).review_status == ReviewStatus.NEEDS_REVIEW
    assert LogEntry.objects.filter(action_flag=CHANGE,
                                   change_message__startswith="Reviewed: ").count() == 10
    # Decisions survive a reload: decided cards are gone, the skipped one leads the queue.
    page.reload()
    after = card_order(page)
    assert not set(expected) & set(after) and after[0] == cards[5]

    measure_fifty_by_keyboard(page, base)
    look_at_a_product_and_the_phone_layout(page, base, cards[0])


def measure_fifty_by_keyboard(page, base: str) -> None:
    """Accept 50 predictions with the A key, loading the next page when one is done.

    Prints the time (a measurement for the report, not a limit): keys are pressed as fast as
    the page takes them and the clock stops when the last decision is saved.
    """
    from catalog.models import CategorySource, Product

    before = Product.objects.filter(category_source=CategorySource.PERSON).count()
    page.goto(f"{base}/admin/catalog/product/review/")
    page.wait_for_function("document.activeElement.classList.contains('review-card')")
    started, pressed, on_page = time.perf_counter(), 0, 0
    while pressed < MEASURED:
        if page.locator(".review-done").is_visible():
            wait_until_saved(page, on_page)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            page.wait_for_function("document.activeElement.classList.contains('review-card')")
            on_page = 0
            continue
        page.keyboard.press("a")
        pressed += 1
        on_page += 1
    wait_until_saved(page, on_page)
    seconds = time.perf_counter() - started
    assert Product.objects.filter(category_source=CategorySource.PERSON).count() \
        == before + MEASURED
    print(f"\nReviewed {MEASURED} products by keyboard in {seconds:.1f} s "
          f"({seconds / MEASURED * 1000:.0f} ms per decision, saves included)")


def look_at_a_product_and_the_phone_layout(page, base: str, pk: int) -> None:
    """The product page's preview panel, and the review grid at phone width."""
    page.goto(f"{base}/admin/catalog/product/{pk}/change/")
    assert page.locator(".prediction-panel img").evaluate("img => img.naturalWidth > 0")
    assert page.locator(".prediction-panel button[name=category]").count() >= 1
    screenshot(page, "product-page")

    page.set_viewport_size(PHONE)
    page.goto(f"{base}/admin/catalog/product/review/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the review page scrolls sideways on a phone ({width} px)"
    screenshot(page, "review-page-phone")
