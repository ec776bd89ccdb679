"""Drift: classification figures per ISO week, and whether this week falls clearly below validation.

A model is judged on held-out products when it is trained (``ModelVersion.metrics``); once in
use, the products it sees may drift away from those (new kinds of items, other photographers,
another studio light). Its own figures show it first: the mean confidence of its predictions and
the share it fills automatically drop before anyone has counted wrong categories. This module
reads them from ``PredictionRecord`` (one row per classification) in one grouped query per call,
and compares this week's with the active version's validation figures.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from datetime import date, datetime, timedelta

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from classifier.models import (
    RECLASSIFY_SCOPE_PREFIX,
    ModelVersion,
    PredictionOutcome,
    PredictionRecord,
)

# Weeks the dashboard's chart shows: a quarter, enough to see a trend and a model change.
CHART_WEEKS = 12
# Fewer predictions than this in a week and its mean is too noisy to judge (and the normal
# approximation behind the z-scores below is poor).
MIN_RECORDS = 30
# One-sided z at which a drop counts as clear: p ~ 0.0013 per figure, so two figures checked
# every week raise a false alarm about once in seven years when nothing changed.
Z_ALERT = 3.0
# ...and only when the drop also matters: with thousands of predictions a week, a z-test alone
# would flag a confidence 1 point lower, which no one should act on.
MIN_CONFIDENCE_DROP = 0.05
MIN_SHARE_DROP = 0.10


@dataclasses.dataclass(frozen=True)
class WeekFigures:
    """One ISO week's predictions (overall, or of one predicted category)."""

    week: date  # its Monday
    total: int = 0
    auto_filled: int = 0
    to_review: int = 0
    failed: int = 0
    confidence_count: int = 0
    confidence_sum: float = 0.0
    confidence_squares: float = 0.0

    @property
    def label(self) -> str:
        year, number, _ = self.week.isocalendar()
        return f"{year}-W{number:02d}"

    # Shares are of every prediction of the week, failed ones (unreadable images) included, so
    # filled + sent to review + failed = 100 %. The drift check leaves failures out instead.
    @property
    def auto_share(self) -> float | None:
        """Share of the week's classified products whose category was filled automatically."""
        return self.auto_filled / self.total if self.total else None

    @property
    def review_share(self) -> float | None:
        return self.to_review / self.total if self.total else None

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.confidence_count if self.confidence_count else None

    @property
    def confidence_std(self) -> float:
        """Sample standard deviation of the week's confidences (0 with fewer than two)."""
        n = self.confidence_count
        if n < 2:
            return 0.0
        variance = (self.confidence_squares - self.confidence_sum ** 2 / n) / (n - 1)
        return math.sqrt(max(0.0, variance))

    def __add__(self, other: WeekFigures) -> WeekFigures:
        return dataclasses.replace(self, **{
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self) if f.name != "week"})


@dataclasses.dataclass(frozen=True)
class WeeklyFigures:
    """``weeks``: overall, oldest first, every week present (empty ones too);
    ``by_category``: the same weeks per predicted category slug."""

    weeks: list[WeekFigures]
    by_category: dict[str, list[WeekFigures]]


def week_start(moment: datetime) -> date:
    """Monday of ``moment``'s ISO week, in the site's time zone."""
    day = timezone.localtime(moment).date()
    return day - timedelta(days=day.weekday())


def prediction_records_by_week(*, weeks: int = CHART_WEEKS,
                               model_version: ModelVersion | None = None,
                               now: datetime | None = None) -> WeeklyFigures:
    """Counts and confidence sums per ISO week, outcome and predicted category.

    One grouped query over the weeks' rows (an index on ``created_at`` bounds it; the groups
    are weeks x categories x 3 outcomes, so Python combines only a few hundred rows). The
    re-classification an activation starts is left out: it is not new images.

    Args:
        weeks: how many weeks, ending with the current one.
        model_version: only this version's predictions (the drift check), else every one.
        now: "today" (tests).
    """
    first = week_start(now or timezone.now()) - timedelta(weeks=weeks - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    # Re-classification after an activation re-runs the products in review (the uncertain
    # ones): counting it would look like a drop in confidence in every activation's week.
    records = (PredictionRecord.objects.filter(created_at__gte=start)
               .exclude(job__scope__startswith=RECLASSIFY_SCOPE_PREFIX))
    if model_version is not None:
        records = records.filter(model_version=model_version)
    groups = (records.annotate(week=TruncWeek("created_at")).values("week", "label", "outcome")
              .annotate(n=Count("id"), conf_n=Count("confidence"), conf_sum=Sum("confidence"),
                        conf_sq=Sum(F("confidence") * F("confidence")))
              .order_by())
    mondays = [first + timedelta(weeks=i) for i in range(weeks)]
    overall = {monday: WeekFigures(monday) for monday in mondays}
    by_category: dict[str, dict[date, WeekFigures]] = defaultdict(
        lambda: {monday: WeekFigures(monday) for monday in mondays})
    for row in groups:
        monday = _as_date(row["week"])
        if monday not in overall:
            continue
        figures = _figures(monday, row)
        overall[monday] += figures
        if row["label"]:
            by_category[row["label"]][monday] += figures
    return WeeklyFigures(weeks=list(overall.values()),
                         by_category={slug: list(days.values())
                                      for slug, days in sorted(by_category.items())})


def _as_date(value) -> date:
    """TruncWeek gives an aware datetime on PostgreSQL and SQLite alike; a date is enough."""
    return timezone.localtime(value).date() if isinstance(value, datetime) else value


def _figures(monday: date, row: dict) -> WeekFigures:
    n, outcome = row["n"], row["outcome"]
    return WeekFigures(
        monday, total=n,
        auto_filled=n if outcome == PredictionOutcome.CLASSIFIED else 0,
        to_review=n if outcome == PredictionOutcome.NEEDS_REVIEW else 0,
        failed=n if outcome == PredictionOutcome.FAILED else 0,
        confidence_count=row["conf_n"] or 0, confidence_sum=float(row["conf_sum"] or 0.0),
        confidence_squares=float(row["conf_sq"] or 0.0))


# --- the drift check ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DriftFigure:
    """One figure of this week against the model's validation value."""

    name: str
    week: float
    validation: float
    z: float
    drop: float
    clear: bool


@dataclasses.dataclass(frozen=True)
class DriftCheck:
    """``status``: "drift" (a figure is clearly below validation), "ok", "too_few" (fewer than
    ``MIN_RECORDS`` predictions this week) or "no_baseline" (no active model, or one without
    validation figures)."""

    status: str
    message: str
    records: int = 0
    figures: tuple[DriftFigure, ...] = ()

    @property
    def drifting(self) -> bool:
        return self.status == "drift"


def prediction_drift_check(*, model_version: ModelVersion | None,
                           now: datetime | None = None) -> DriftCheck:
    """Is this week's mean confidence or auto-fill share clearly below validation?

    Only ``model_version``'s own predictions this ISO week count. "Clearly" means both:
    a one-sided z-score above ``Z_ALERT`` (3) and a drop of at least ``MIN_CONFIDENCE_DROP``
    (5 points) in mean confidence or ``MIN_SHARE_DROP`` (10 points) in auto-fill share. The
    z-scores account for both sample sizes: the week's n and the validation's held-out count.
    Mean confidence: ``(validation - week) / (s * sqrt(1/n + 1/n_val))`` with ``s`` the week's
    standard deviation of confidences (the validation's own is not stored; the two spreads are
    alike when nothing drifted). Auto-fill share: the two-proportion z-test with pooled ``p``.
    """
    baseline = _validation_figures(model_version)
    if baseline is None:
        return DriftCheck("no_baseline", "No active model with validation figures to compare "
                                         "this week's predictions with.")
    week = prediction_records_by_week(weeks=1, model_version=model_version, now=now).weeks[-1]
    judged = week.total - week.failed
    if judged < MIN_RECORDS:
        return DriftCheck("too_few", f"{judged} prediction{'s' if judged != 1 else ''} by "
                          f"v{model_version.number} this week: too few to judge drift (at least "
                          f"{MIN_RECORDS}).", records=judged)
    mean_confidence, coverage, n_val = baseline
    figures = []
    if mean_confidence is not None and week.mean_confidence is not None:
        figures.append(_confidence_figure(week, mean_confidence, n_val))
    if coverage is not None:
        figures.append(_share_figure(week, judged, coverage, n_val))
    clear = [f for f in figures if f.clear]
    if not clear:
        return DriftCheck("ok", f"This week's {judged} predictions by v{model_version.number} "
                          "are in line with its validation figures.", judged, tuple(figures))
    what = " and ".join(f"{f.name} {f.week:.0%} (validation {f.validation:.0%})" for f in clear)
    return DriftCheck("drift", f"Possible drift: this week's {what} over {judged} predictions by "
                      f"v{model_version.number}. Review a sample of this week's products and "
                      "retrain with them labelled.", judged, tuple(figures))


def _validation_figures(version: ModelVersion | None
                        ) -> tuple[float | None, float | None, int | None] | None:
    metrics = version.metrics if version is not None and isinstance(version.metrics, dict) else {}
    calibration = metrics.get("calibration") if isinstance(metrics.get("calibration"), dict) else {}
    auto_fill = metrics.get("auto_fill") if isinstance(metrics.get("auto_fill"), dict) else {}
    mean_confidence, coverage = calibration.get("mean_confidence"), auto_fill.get("coverage")
    if mean_confidence is None and coverage is None:
        return None
    count = metrics.get("validation_count")
    return mean_confidence, coverage, int(count) if count else None


def _confidence_figure(week: WeekFigures, validation: float, n_val: int | None) -> DriftFigure:
    n = week.confidence_count
    spread = math.sqrt(1 / n + (1 / n_val if n_val else 0.0))
    # A floor for a week of identical confidences (s = 0): any drop would be infinitely "sure".
    se = max(week.confidence_std, 1e-3) * spread
    drop = validation - week.mean_confidence
    z = drop / se
    return DriftFigure("mean confidence", week.mean_confidence, validation, z, drop,
                       z > Z_ALERT and drop >= MIN_CONFIDENCE_DROP)


def _share_figure(week: WeekFigures, judged: int, validation: float,
                  n_val: int | None) -> DriftFigure:
    share = week.auto_filled / judged
    if n_val:
        pooled = (week.auto_filled + validation * n_val) / (judged + n_val)
        variance = pooled * (1 - pooled) * (1 / judged + 1 / n_val)
    else:
        variance = validation * (1 - validation) / judged
    se = math.sqrt(max(variance, 1e-9))
    drop = validation - share
    z = drop / se
    return DriftFigure("auto-fill share", share, validation, z, drop,
                       z > Z_ALERT and drop >= MIN_SHARE_DROP)
