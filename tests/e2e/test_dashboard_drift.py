"""The dashboard's weekly chart and drift warning in Chromium, on a desktop and on a phone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Category, Product
from classifier.models import ModelVersion, PredictionOutcome, PredictionRecord
from tests.e2e.browser import PASSWORD, login, screenshot
from tests.support.model_metrics import calibrated_metrics

pytestmark = pytest.mark.slow

CATEGORIES = ["kitchen-and-dining", "tools", "garden"]
# Smallest rendered text height (CSS px) still comfortable to read on a phone.
MIN_TEXT_PX = 9


@pytest.fixture
def drifting_shop(transactional_db):
    """Eight weeks of predictions whose confidence and auto-fill share sink in the last one."""
    for slug in CATEGORIES:
        Category.objects.create(slug=slug, name=slug.replace("-", " ").capitalize())
    metrics = calibrated_metrics(CATEGORIES)
    metrics["calibration"]["mean_confidence"] = 0.88
    model = ModelVersion.objects.create(number=1, labels=CATEGORIES, input_contract={},
                                        architecture="efficientnet_lite0", checksum="0" * 64,
                                        file="models/x.tflite", is_active=True, metrics=metrics)
    product = Product.objects.create(sku="P1", title="p")
    now = timezone.now()
    for weeks_ago in range(8):
        confidence = 0.6 if weeks_ago == 0 else 0.86 - weeks_ago * 0.005
        auto = 0.3 if weeks_ago == 0 else 0.7
        rows = [PredictionRecord(product=product, model_version=model,
                                 label=CATEGORIES[i % 3], confidence=confidence,
                                 outcome=(PredictionOutcome.CLASSIFIED if i < 60 * auto
                                          else PredictionOutcome.NEEDS_REVIEW))
                for i in range(60)]
        ids = [r.pk for r in PredictionRecord.objects.bulk_create(rows)]
        PredictionRecord.objects.filter(pk__in=ids).update(
            created_at=now - timedelta(weeks=weeks_ago))
    return model


def _chart_text_problems(page) -> dict:
    return page.evaluate("""() => {
      const svg = document.querySelector('.dashboard-drift svg[role=img]');
      const texts = [...svg.querySelectorAll('text')].map(t => [t.textContent,
                                                                t.getBoundingClientRect()]);
      const overlaps = [];
      texts.forEach(([a, r], i) => texts.slice(i + 1).forEach(([b, q]) => {
        const w = Math.min(r.right, q.right) - Math.max(r.left, q.left);
        const h = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
        if (w > 1 && h > 1 && !a.includes('Share') && !b.includes('Share')) overlaps.push([a, b]);
      }));
      const box = svg.getBoundingClientRect();
      const outside = texts.filter(([, r]) => r.left < box.left - 1 || r.right > box.right + 1)
        .map(([t]) => t);
      return {overlaps, outside, smallest: Math.min(...texts.map(([, r]) => r.height)),
              overflow: document.documentElement.scrollWidth - window.innerWidth};
    }""")


def test_weekly_chart_and_warning_read_well_on_a_desktop_and_a_phone(
        browser_page, drifting_shop, live_server, django_user_model):
    page, base = browser_page, live_server.url
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    login(page, base, "admin")

    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/admin/")
        warning = page.locator(".dashboard-drift .drift-warning")
        assert warning.is_visible() and "Possible drift" in warning.inner_text()
        problems = _chart_text_problems(page)
        assert problems["overlaps"] == [] and problems["outside"] == [], (width, problems)
        assert problems["smallest"] >= MIN_TEXT_PX, (width, problems)
        assert problems["overflow"] <= 0, f"the page scrolls sideways at {width} px"
        page.locator(".dashboard-drift").scroll_into_view_if_needed()
        screenshot(page, f"dashboard-drift-{width}")
