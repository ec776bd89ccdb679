"""The admin index's dashboard: what needs a person today, and how the classifier is doing.

The outermost layer (it reads catalog, classifier and training), so it lives beside the URL
configuration rather than in any one app. Each tile links to the list it counts; a tile whose
target the user may not see is shown without the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from operator import add
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from catalog.models import Category
from classifier import drift
from classifier import selectors as classifier_selectors
from training import selectors as training_selectors
from training.charts import GOOD_COLOUR, TRAIN_COLOUR, VALIDATION_COLOUR, weekly_figures_svg
from training.report import auto_fill_sentence, percent

# "This week" on the dashboard: a rolling window, so Monday mornings are not empty.
AUTO_FILLED_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Tile:
    title: str
    value: str
    detail: str = ""
    url: str = ""
    link_text: str = ""


def _changelist(name: str, **query) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(query)}" if query else url


def _review_tile(user) -> Tile:
    count = classifier_selectors.products_needing_review_count()
    labels = classifier_selectors.person_labels_since_active_model_count()
    url = ""
    if user.has_perm("catalog.change_product"):
        url = reverse("admin:catalog_product_review")
    elif user.has_perm("catalog.view_product"):
        url = _changelist("catalog_product", review_status__exact="needs_review")
    return Tile("Needs review", f"{count:,}",
                f"{labels:,} product{'s' if labels != 1 else ''} labelled by people since the "
                f"active model. {training_selectors.retrain_status().sentence()}", url,
                "Review now" if count else "Open the queue")


def _auto_filled_tile(user, now) -> Tile:
    since = now - AUTO_FILLED_WINDOW
    count = classifier_selectors.products_auto_filled_since(since=since).count()
    url = (_changelist("catalog_product", category_source__exact="classifier",
                       category_set_at__gte=since.isoformat(timespec="seconds"))
           if user.has_perm("catalog.view_product") else "")
    return Tile("Filled automatically", f"{count:,}",
                "categories the classifier set on its own in the last 7 days", url, "See them")


def _model_tile(user) -> Tile:
    model = classifier_selectors.model_version_get_active()
    if model is None:
        url = reverse("admin:training_trainingrun_retrain") if user.has_perm(
            "training.add_trainingrun") else ""
        return Tile("Active model", "none", "Nothing is classified until a model is trained "
                    "and activated.", url, "Train one")
    metrics = model.metrics if isinstance(model.metrics, dict) else {}
    auto = metrics.get("auto_fill") if isinstance(metrics.get("auto_fill"), dict) else {}
    detail = (auto_fill_sentence(metrics) if auto
              else "Auto-fill precision not measured for this version.")
    value = f"{percent(metrics.get('accuracy'), 1)} accurate"
    if auto.get("precision") is not None:
        value += f", auto-fill {percent(auto['precision'])} right"
    url = (reverse("admin:classifier_modelversion_change", args=[model.pk])
           if user.has_perm("classifier.view_modelversion") else "")
    name = f"v{model.number}" + (f" {model.name}" if model.name else "")
    return Tile(f"Active model: {name}", value, detail, url, "Open its report")


def _jobs_tile(user) -> Tile:
    jobs = classifier_selectors.classification_jobs_unfinished().count()
    runs = training_selectors.training_runs_unfinished().count()
    job_url = (_changelist("classifier_classificationjob", status__in="queued,running")
               if user.has_perm("classifier.view_classificationjob") else "")
    run_url = (_changelist("training_trainingrun", status__in="queued,running")
               if user.has_perm("training.view_trainingrun") else "")
    detail = (f"{jobs} classification job{'s' if jobs != 1 else ''}, {runs} training "
              f"run{'s' if runs != 1 else ''} queued or running")
    url = run_url if runs and not jobs else (job_url or run_url)
    return Tile("Running jobs", f"{jobs + runs}", detail, url, "Follow them")


def dashboard_tiles(user) -> list[Tile]:
    """The four tiles above the app list, in the order an operator's eye should go."""
    now = timezone.now()
    return [_review_tile(user), _auto_filled_tile(user, now), _model_tile(user),
            _jobs_tile(user)]


# --- drift: the weekly figures below the tiles ----------------------------------------------------


@dataclass(frozen=True)
class CategoryWeek:
    """One predicted category's figures this week beside its earlier weeks' mean confidence."""

    name: str
    count: int
    auto_share: str
    mean_confidence: str
    review_share: str
    earlier_confidence: str


@dataclass(frozen=True)
class DriftPanel:
    chart: str
    check: drift.DriftCheck
    week: str
    categories: list[CategoryWeek]


def dashboard_drift(user, *, now=None) -> DriftPanel | None:
    """The weekly chart, the drift check and this week's figures per category.

    None for users who may not see model versions, and before anything was classified.
    """
    if not user.has_perm("classifier.view_modelversion"):
        return None
    figures = drift.prediction_records_by_week(now=now)
    if not any(week.total for week in figures.weeks):
        return None
    active = classifier_selectors.model_version_get_active()
    return DriftPanel(chart=_drift_chart(figures.weeks, active),
                      check=drift.prediction_drift_check(model_version=active, now=now),
                      week=figures.weeks[-1].label,
                      categories=_category_weeks(figures.by_category))


def _drift_chart(weeks: list[drift.WeekFigures], active) -> str:
    metrics = active.metrics if active is not None and isinstance(active.metrics, dict) else {}
    references = []
    confidence = (metrics.get("calibration") or {}).get("mean_confidence")
    coverage = (metrics.get("auto_fill") or {}).get("coverage")
    if confidence is not None:
        references.append(("validation mean confidence", confidence, TRAIN_COLOUR))
    if coverage is not None:
        references.append(("validation auto-fill share", coverage, GOOD_COLOUR))
    return weekly_figures_svg(
        [week.label for week in weeks],
        [("filled automatically", [w.auto_share for w in weeks], GOOD_COLOUR),
         ("sent to review", [w.review_share for w in weeks], VALIDATION_COLOUR),
         ("mean confidence", [w.mean_confidence for w in weeks], TRAIN_COLOUR)],
        references=references,
        tooltips=[f"{w.total} predictions, {w.failed} failed" for w in weeks])


def _category_weeks(by_category: dict[str, list[drift.WeekFigures]]) -> list[CategoryWeek]:
    names = dict(Category.objects.filter(slug__in=list(by_category)).values_list("slug", "name"))
    rows = []
    for slug, weeks in by_category.items():
        this, earlier = weeks[-1], reduce(add, weeks[:-1], drift.WeekFigures(weeks[0].week))
        rows.append(CategoryWeek(
            name=names.get(slug, slug), count=this.total, auto_share=percent(this.auto_share),
            mean_confidence=percent(this.mean_confidence),
            review_share=percent(this.review_share),
            earlier_confidence=percent(earlier.mean_confidence)))
    return sorted(rows, key=lambda row: (-row.count, row.name.lower()))
