"""The admin flow in a real browser: classify, review, accept, retrain, export.

Chromium (Debian's package, driven by Playwright) talks to a live server in this process, and
real ``qcluster`` processes (default and training) do the background work on the same test
database. Screenshots of the key pages go to ``test-artifacts/screenshots/``; with
``SAVE_README_SCREENSHOTS=1`` they are also written to ``docs/screenshots/`` for the README.

Run: ``.venv/bin/python -m pytest -q -m slow tests/e2e -s``
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.e2e.browser import (
    DEMO_CATALOG,
    PASSWORD,
    VIEWPORT,
    login,
    screenshot,
    spread,
    write_csv,
)

# A handful of demo products: enough labelled images per category for a tiny model (training
# needs 5 per category), and a few unlabelled ones for the classifier.
CATEGORIES = ["fruit", "drinks", "tools"]
LABELLED_PER_CATEGORY = 7
UNLABELLED_PER_CATEGORY = 3
# Guards against a hang; not a speed requirement. Training a tiny model includes TF start-up.
WAIT_SECONDS = 240

pytestmark = [pytest.mark.slow]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def small_catalog(tmp_path, transactional_db):
    """Import a few demo products per category and train a first tiny model, as a shop would."""
    folder = tmp_path / "catalog"
    with (DEMO_CATALOG / "catalog.csv").open(newline="", encoding="utf-8") as handle:
        demo_rows = list(csv.DictReader(handle))
    rows = []
    for slug in CATEGORIES:
        of_category = [row for row in demo_rows if row["category_slug"] == slug]
        labelled = [row for row in of_category if row["labelled"] == "1"]
        unlabelled = [row for row in of_category if row["labelled"] == "0"]
        # Spread over the category, so the few images show several different products.
        rows += spread(labelled, LABELLED_PER_CATEGORY) + spread(unlabelled,
                                                                 UNLABELLED_PER_CATEGORY)
    for row in rows:
        (folder / row["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_CATALOG / row["image"], folder / row["image"])
    write_csv(folder / "catalog.csv", rows)
    with (DEMO_CATALOG / "categories.csv").open(newline="", encoding="utf-8") as handle:
        categories = [c for c in csv.DictReader(handle)
                      if c["slug"] in CATEGORIES or c["slug"] == "food"]
    write_csv(folder / "categories.csv", categories)

    call_command("import_catalog", str(folder / "catalog.csv"),
                 "--categories", str(folder / "categories.csv"), "--images-dir", str(folder))
    # The pretrained default, as a shop would train it (float32: one export, not three).
    call_command("train_classifier", "--quantization", "float32", "--seed", "1", "--activate",
                 "--name", "first")
    return rows


# --- step helpers -----------------------------------------------------------------------------


def scroll_to(page, selector: str) -> None:
    """Bring an element to the top of the viewport (when the page has it) for a screenshot."""
    target = page.locator(selector)
    if target.count():
        target.first.evaluate("element => element.scrollIntoView()")
        page.wait_for_load_state("networkidle")  # the chart images


def action_values(page) -> list[str]:
    return page.eval_on_selector_all("select[name=action] option", "os => os.map(o => o.value)")


def choose_action(page, name: str) -> None:
    """Pick an action in the changelist's menu by its option value (the function name)."""
    offered = action_values(page)
    assert name in offered, f"The action {name!r} is not offered; the menu has {offered}"
    page.select_option("select[name=action]", name)


def select_rows(page, pks: list[int] | None = None) -> None:
    """Tick the given rows of the changelist (all rows on the page when ``pks`` is None)."""
    if pks is None:
        page.check("#action-toggle")
        return
    for pk in pks:
        page.check(f"input.action-select[value='{pk}']")


def submit_action(page, *, navigates: bool = True) -> None:
    """Press the action bar's "Go"; waits for the next page unless the answer is a download."""
    go = "div.actions button[type=submit], div.actions input[type=submit]"
    if not navigates:
        page.click(go)
        return
    with page.expect_navigation():
        page.click(go)


def confirm_if_asked(page) -> None:
    """Intermediate confirmation pages (Django's delete-style) carry a "yes" submit."""
    button = page.locator("form input[type=submit][value*='Yes'], form button:has-text('Yes')")
    if button.count():
        with page.expect_navigation():
            button.first.click()


class WaitTimeout(AssertionError):
    pass


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise WaitTimeout(f"Timed out waiting for {what}")


def status_text(page) -> str:
    """The status shown on a job or run page (its read-only field, else the whole page)."""
    field = page.locator(".field-status .readonly")
    return field.first.inner_text() if field.count() else page.inner_text("#content")


def reload_until_status(page, pattern: str, what: str, clusters=()) -> None:
    """Reload until the page's status matches ``pattern``; fails early if a worker died."""
    def shown() -> bool:
        for cluster in clusters:
            if cluster.process.poll() is not None:
                raise AssertionError(f"qcluster exited while waiting for {what}:\n{cluster.log()}")
        page.reload()
        status = status_text(page)
        if re.search(r"Failed", status):
            raise AssertionError(f"{what}: failed:\n{page.inner_text('#content')}")
        return re.search(pattern, status) is not None

    try:
        wait_for(shown, what)
    except WaitTimeout:
        logs = "\n".join(cluster.log()[-3000:] for cluster in clusters)
        raise AssertionError(f"Timed out waiting for {what}. Worker logs:\n{logs}") from None


def overlapping_chart_labels(page) -> list[list[str]]:
    """Pairs of horizontal chart labels whose boxes overlap as drawn (rotated ones excepted)."""
    return page.evaluate("""() => {
      const pairs = [];
      for (const svg of document.querySelectorAll('.model-report svg[role=img]')) {
        const boxes = [...svg.querySelectorAll('text:not([transform])')]
          .map(t => [t.textContent, t.getBoundingClientRect()]);
        boxes.forEach(([a, r], i) => boxes.slice(i + 1).forEach(([b, q]) => {
          const w = Math.min(r.right, q.right) - Math.max(r.left, q.left);
          const h = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
          if (w > 1 && h > 1) { pairs.push([a, b]); }
        }));
      }
      return pairs;
    }""")


def prediction_text(page, pk: int) -> str:
    """The predicted category and confidence a product's changelist row shows."""
    row = page.locator(f"tr:has(input.action-select[value='{pk}'])")
    cells = row.locator("td.field-prediction_display, td.field-predicted_category, "
                        "td.field-prediction_confidence")
    return " ".join(cells.all_inner_texts())


def download(page, click: Callable[[], None]) -> tuple[str, bytes]:
    with page.expect_download() as info:
        click()
    item = info.value
    return item.suggested_filename, Path(item.path()).read_bytes()


# --- the flow ---------------------------------------------------------------------------------


def test_admin_classifies_reviews_accepts_retrains_and_exports_in_a_browser(
        browser_page, small_catalog, live_server, qcluster, django_user_model):
    from catalog.models import Category, CategorySource, Product, ReviewStatus
    from classifier.models import ClassificationJob, ModelVersion

    page, base = browser_page, live_server.url
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    workers = qcluster()
    trainer = qcluster(cluster_name="training")
    unlabelled = list(Product.objects.filter(category_source=CategorySource.NONE)
                      .values_list("pk", flat=True))
    assert len(unlabelled) == len(CATEGORIES) * UNLABELLED_PER_CATEGORY

    login(page, base, "admin")

    # 1. Select the unlabelled products and classify them.
    page.goto(f"{base}/admin/catalog/product/?category_source__exact=none")
    select_rows(page, unlabelled)
    choose_action(page, "classify_selected")
    submit_action(page)
    confirm_if_asked(page)
    job_link = page.locator(".messagelist a[href*='/classificationjob/']")
    assert job_link.count(), f"No link to the job in the messages: {page.inner_text('#content')}"
    with page.expect_navigation():
        job_link.first.click()
    job_pk = int(re.search(r"/classificationjob/(\d+)/", page.url).group(1))
    reload_until_status(page, r"Succeeded", "the classification job to succeed", [workers])
    assert page.locator("#job-products tbody tr").count() == len(unlabelled)
    scroll_to(page, "#job-products")
    screenshot(page, "job-progress")
    job = ClassificationJob.objects.get(pk=job_pk)
    assert (job.total, job.done_count, job.failed_count) == (len(unlabelled), len(unlabelled), 0)

    # 2. Categories and confidences show in the product list (confident predictions have
    # filled the shop category by now, so the list is not filtered by category source).
    page.goto(f"{base}/admin/catalog/product/")
    names = {c.pk: c.name for c in Category.objects.all()}
    for product in Product.objects.filter(pk__in=unlabelled):
        shown = prediction_text(page, product.pk)
        assert names[product.predicted_category_id] in shown, (product.sku, shown)
        assert f"{product.prediction_confidence:.0%}" in shown, (product.sku, shown)
    screenshot(page, "changelist-predictions")
    with page.expect_navigation():
        page.click("#content a:has-text('Needs review')")
    in_review = Product.objects.filter(review_status=ReviewStatus.NEEDS_REVIEW)
    assert page.locator("#result_list tbody tr").count() == in_review.count()
    screenshot(page, "needs-review")

    # 3. Accept one prediction: it becomes the shop category, as a person's decision.
    chosen = in_review.first() or Product.objects.get(pk=unlabelled[0])
    page.goto(f"{base}/admin/catalog/product/")
    select_rows(page, [chosen.pk])
    choose_action(page, "accept_predicted_category")
    submit_action(page)
    confirm_if_asked(page)
    chosen.refresh_from_db()
    assert chosen.category_id == chosen.predicted_category_id is not None
    assert chosen.category_source == CategorySource.PERSON
    assert chosen.review_status == ReviewStatus.CLASSIFIED

    # 4. Retrain from the admin form and see the new model version appear.
    first = ModelVersion.objects.get()
    page.goto(f"{base}/admin/classifier/modelversion/{first.pk}/change/")
    # Confusion matrix, loss and accuracy at least; reliability and auto-fill when measured.
    assert page.locator(".model-report svg[role=img]").count() >= 3
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert overlapping_chart_labels(page) == [], f"chart labels overlap at {width} px"
    page.set_viewport_size(VIEWPORT)
    scroll_to(page, "#report-evaluation")
    screenshot(page, "model-version-report")
    start_retrain(page, base)
    reload_until_status(page, r"Succeeded", "the training run to succeed", [trainer])
    screenshot(page, "training-run")
    page.goto(f"{base}/admin/classifier/modelversion/")
    versions = page.locator("#result_list tbody tr")
    assert versions.count() == 2, page.inner_text("#result_list")
    assert ModelVersion.objects.count() == 2
    newest = ModelVersion.objects.order_by("-number").first()
    assert page.locator(f"#result_list a[href*='/modelversion/{newest.pk}/']").count()
    screenshot(page, "model-versions")

    # 5. Download the newest model as a bundle.
    assert "activate_version" in action_values(page)  # rollback stays one action away
    select_rows(page, [newest.pk])
    choose_action(page, "download_model")
    name, data = download(page, lambda: submit_action(page, navigates=False))
    assert name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = {Path(n).name for n in bundle.namelist()}
        assert {"model.tflite", "labels.txt", "metadata.json"} <= names, names
        labels_name = next(n for n in bundle.namelist() if n.endswith("labels.txt"))
        assert bundle.read(labels_name).decode().split() == list(newest.labels)

    # 6. Export the products as CSV.
    page.goto(f"{base}/admin/catalog/product/")
    select_rows(page)
    choose_action(page, "export_selected_csv")
    name, data = download(page, lambda: submit_action(page, navigates=False))
    assert name.endswith(".csv")
    exported = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert exported and "sku" in exported[0]
    assert {row["sku"] for row in exported} == set(Product.objects.values_list("sku", flat=True))


def start_retrain(page, base: str) -> None:
    """Open the Retrain form from the model versions page and start a tiny run."""
    page.goto(f"{base}/admin/classifier/modelversion/")
    with page.expect_navigation():
        page.click(".object-tools a:has-text('Retrain')")
    # The form's defaults are the pretrained backbone; one export keeps the run short.
    assert page.input_value("select[name=architecture]") == "efficientnet_lite0"
    page.select_option("select[name=quantization]", "float32")
    page.select_option("select[name=activation_policy]", "always")
    # The form holding the options: the header's logout button is a form submit too.
    page.click("form:has(select[name=architecture]) [type=submit]")
    page.wait_for_url(re.compile(r"/admin/training/trainingrun/\d+/"))
