"""Drift: weekly figures from hand-made prediction records, and the sample-size-aware warning."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from classifier.drift import prediction_drift_check, prediction_records_by_week
from classifier.models import PredictionOutcome, PredictionRecord

pytestmark = pytest.mark.usefixtures("no_auto_classify")

# A Wednesday noon: "this week" began on Monday 2025-03-10.
NOW = timezone.make_aware(datetime(2025, 3, 12, 12, 0))
VALIDATION = {"validation_count": 200, "calibration": {"mean_confidence": 0.85},
              "auto_fill": {"coverage": 0.70}}


def _records(version, product, *, when, confidences, auto_share=0.7, label="red", failed=0):
    """Records at ``when``: the first ``auto_share`` of them filled automatically."""
    auto = round(len(confidences) * auto_share)
    rows = [PredictionRecord(product=product, model_version=version, label=label,
                             confidence=float(c),
                             outcome=(PredictionOutcome.CLASSIFIED if i < auto
                                      else PredictionOutcome.NEEDS_REVIEW))
            for i, c in enumerate(confidences)]
    rows += [PredictionRecord(product=product, model_version=version,
                              outcome=PredictionOutcome.FAILED, error="corrupt")
             for _ in range(failed)]
    created = PredictionRecord.objects.bulk_create(rows)
    # created_at is set on insert; move the rows to the week under test.
    PredictionRecord.objects.filter(pk__in=[r.pk for r in created]).update(created_at=when)


@pytest.fixture
def version(make_model_version):
    version = make_model_version()
    version.metrics = VALIDATION
    version.save()
    return version


@pytest.fixture
def product(make_product):
    return make_product()


def _confidences(mean: float, count: int, *, spread: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(mean, spread, count), 0.05, 1.0)


def test_weekly_figures_per_iso_week_overall_and_per_category(version, product):
    last_week = NOW - timedelta(days=7)
    _records(version, product, when=last_week, confidences=[0.9, 0.8, 0.7, 0.6], auto_share=0.5)
    _records(version, product, when=last_week, confidences=[0.5, 0.3], auto_share=0,
             label="blue", failed=2)
    _records(version, product, when=NOW, confidences=[1.0], auto_share=1)
    _records(version, product, when=NOW - timedelta(weeks=20), confidences=[0.1])  # too old

    figures = prediction_records_by_week(weeks=4, now=NOW)

    assert [w.label for w in figures.weeks] == ["2025-W08", "2025-W09", "2025-W10", "2025-W11"]
    before, last, this = figures.weeks[1], figures.weeks[2], figures.weeks[3]
    assert before.total == 0 and before.auto_share is None
    assert (last.total, last.auto_filled, last.to_review, last.failed) == (8, 2, 4, 2)
    assert last.auto_share == pytest.approx(2 / 8) and last.review_share == pytest.approx(4 / 8)
    assert last.mean_confidence == pytest.approx(3.8 / 6)
    assert (this.total, this.mean_confidence) == (1, pytest.approx(1.0))
    assert set(figures.by_category) == {"red", "blue"}
    blue = figures.by_category["blue"][2]
    assert (blue.total, blue.to_review, blue.mean_confidence) == (2, 2, pytest.approx(0.4))
    assert figures.by_category["red"][2].confidence_std == pytest.approx(
        np.std([0.9, 0.8, 0.7, 0.6], ddof=1))


def test_a_clear_drop_in_confidence_and_auto_fill_this_week_is_flagged(version, product):
    _records(version, product, when=NOW - timedelta(weeks=1), confidences=_confidences(0.85, 80))
    _records(version, product, when=NOW, confidences=_confidences(0.62, 80), auto_share=0.35)

    check = prediction_drift_check(model_version=version, now=NOW)

    assert check.status == "drift" and check.records == 80
    confidence, share = check.figures
    assert confidence.clear and confidence.z > 10 and confidence.drop == pytest.approx(0.23,
                                                                                       abs=0.03)
    assert share.clear and share.week == pytest.approx(0.35)
    assert check.message.startswith("Possible drift: this week's mean confidence 6")
    assert "auto-fill share 35% (validation 70%)" in check.message


def test_the_same_week_as_validation_is_not_flagged(version, product):
    _records(version, product, when=NOW, confidences=_confidences(0.84, 300), auto_share=0.68)

    check = prediction_drift_check(model_version=version, now=NOW)

    assert check.status == "ok" and not check.drifting
    assert all(not f.clear for f in check.figures) and len(check.figures) == 2


def test_a_small_drop_on_a_huge_week_is_significant_but_not_clear(version, product):
    """The z-test alone would flag it; the minimum drop keeps a 3-point dip from alarming."""
    _records(version, product, when=NOW, confidences=_confidences(0.82, 3000), auto_share=0.7)

    confidence = prediction_drift_check(model_version=version, now=NOW).figures[0]

    assert confidence.z > 3 and not confidence.clear


@pytest.mark.parametrize(("count", "clear"), [(35, False), (400, True)])
def test_the_same_drop_is_clear_over_many_predictions_only(version, product, count, clear):
    """Six or seven points lower with a wide spread of confidences: noise over 35 predictions
    (both samples' sizes count), a clear drop over 400."""
    _records(version, product, when=NOW, confidences=_confidences(0.80, count, spread=0.2),
             auto_share=0.7)

    confidence = prediction_drift_check(model_version=version, now=NOW).figures[0]

    assert 0.05 <= confidence.drop <= 0.09
    assert confidence.clear is clear and (confidence.z > 3) is clear


def test_too_few_predictions_this_week_are_not_judged(version, product):
    _records(version, product, when=NOW, confidences=[0.2] * 29, auto_share=0, failed=10)
    _records(version, product, when=NOW - timedelta(weeks=1), confidences=[0.9] * 100)

    check = prediction_drift_check(model_version=version, now=NOW)

    assert check.status == "too_few" and check.records == 29
    assert "too few to judge drift" in check.message


def test_other_versions_predictions_do_not_count(version, product, make_model_version):
    older = make_model_version(activate=False)
    _records(older, product, when=NOW, confidences=[0.2] * 100, auto_share=0)

    assert prediction_drift_check(model_version=version, now=NOW).status == "too_few"


def test_the_re_classification_an_activation_starts_is_not_counted(version, product,
                                                                   make_product):
    """Activation re-runs the products in review: low confidence by selection, not drift."""
    from classifier.models import RECLASSIFY_SCOPE_PREFIX, ClassificationJob

    job = ClassificationJob.objects.create(model_version=version, total=40,
                                           scope=f"{RECLASSIFY_SCOPE_PREFIX}v1 activated")
    _records(version, product, when=NOW, confidences=_confidences(0.85, 80))
    rerun = PredictionRecord.objects.bulk_create([
        PredictionRecord(product=make_product(), model_version=version, job=job, label="red",
                         confidence=0.4, outcome=PredictionOutcome.NEEDS_REVIEW)
        for _ in range(40)])
    PredictionRecord.objects.filter(pk__in=[r.pk for r in rerun]).update(created_at=NOW)

    check = prediction_drift_check(model_version=version, now=NOW)
    assert check.status == "ok" and check.records == 80
    assert prediction_records_by_week(now=NOW).weeks[-1].total == 80


def test_no_active_model_or_validation_figures_means_nothing_to_compare(version):
    assert prediction_drift_check(model_version=None, now=NOW).status == "no_baseline"
    version.metrics = {"accuracy": 0.9}
    assert prediction_drift_check(model_version=version, now=NOW).status == "no_baseline"
