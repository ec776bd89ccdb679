"""The admin index's dashboard: what needs a person today, and how the classifier is doing.

The outermost layer (it reads catalog, classifier and training), so it lives beside the URL
configuration rather than in any one app. Each tile links to the list it counts; a tile whose
target the user may not see is shown without the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from classifier import selectors as classifier_selectors
from training import selectors as training_selectors
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
