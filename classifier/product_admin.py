"""The Product changelist's classification columns, filters, actions and buttons (a mixin).

Kept here rather than in ``catalog/admin.py`` so catalog's admin stays about catalog data;
``ProductAdmin`` mixes this in. Every action calls one classifier service.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from catalog.models import ReviewStatus
from classifier import admin_duplicates, admin_review, selectors, services
from classifier.exceptions import ClassifierError

try:  # The storage helper's resized thumbnails; the original image otherwise.
    from catalog.storage import thumbnail_url as _thumbnail_url
except ImportError:  # pragma: no cover - depends on which branches are merged
    _thumbnail_url = None

THUMBNAIL_PX = 48  # Small enough for 100 rows per page, big enough to tell a mug from a shoe.


class ConfidenceBandFilter(admin.SimpleListFilter):
    """Bands of prediction confidence: where the model is sure, unsure, or guessing."""

    title = "confidence"
    parameter_name = "confidence"
    BANDS = {"low": (0.0, 0.5), "mid": (0.5, 0.8), "high": (0.8, None)}

    def lookups(self, request, model_admin):
        return [("low", "below 50%"), ("mid", "50% to 80%"), ("high", "80% or more")]

    def queryset(self, request, queryset):
        if self.value() not in self.BANDS:
            return queryset
        low, high = self.BANDS[self.value()]
        queryset = queryset.filter(prediction_confidence__gte=low)
        return queryset if high is None else queryset.filter(prediction_confidence__lt=high)


class ProductClassificationAdminMixin:
    """Classification for ``ProductAdmin``: columns, actions, review ordering, classify-all."""

    actions = ["classify_selected", "accept_predicted_category", "send_to_review"]

    @admin.display(description="Image")
    def thumbnail(self, obj):
        if not obj.image:
            return "—"
        url = _thumbnail_url(obj.image, size=160) if _thumbnail_url else obj.image.url
        return format_html('<img src="{}" width="{}" height="{}" alt="" loading="lazy" '
                           'style="object-fit:cover;border-radius:3px">', url, THUMBNAIL_PX,
                           THUMBNAIL_PX)

    @admin.display(description="Prediction", ordering="prediction_confidence")
    def prediction_display(self, obj):
        if obj.predicted_category_id is None:
            return "—"
        return f"{obj.predicted_category} ({obj.prediction_confidence:.0%})"

    def get_ordering(self, request):
        # The review queue: least confident first, where a person's fix teaches the model most.
        if request.GET.get("review_status__exact") == ReviewStatus.NEEDS_REVIEW:
            return [F("prediction_confidence").asc(nulls_last=True), "pk"]
        return super().get_ordering(request)

    @admin.action(description="Classify selected products", permissions=["change"])
    def classify_selected(self, request, queryset):
        self._start_job(request, products=queryset,
                        scope=f"admin: {queryset.count()} selected")

    @admin.action(description="Accept predicted category", permissions=["change"])
    def accept_predicted_category(self, request, queryset):
        accepted, skipped = services.products_accept_predictions(products=queryset,
                                                                 user=request.user)
        self.message_user(request, f"Accepted the predicted category of {accepted} products"
                          + (f"; {skipped} had no prediction yet." if skipped else "."))

    @admin.action(description="Send to review", permissions=["change"])
    def send_to_review(self, request, queryset):
        count = services.products_send_to_review(products=queryset)
        self.message_user(request, f"Sent {count} products to the review queue.")

    def classify_unclassified_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        products = selectors.products_unclassified()
        if products.exists():
            self._start_job(request, products=products, scope="admin: all unclassified")
        else:
            self.message_user(request, "Nothing to classify: every product with an image has "
                              "been classified.", messages.INFO)
        return HttpResponseRedirect(reverse("admin:catalog_product_changelist"))

    @admin.display(description="Confidence", ordering="prediction_confidence")
    def confidence_display(self, obj):
        return "—" if obj.prediction_confidence is None else f"{obj.prediction_confidence:.0%}"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("classify-unclassified/", view(self.classify_unclassified_view),
                 name="catalog_product_classify_unclassified"),
            path("review/", view(lambda request: admin_review.review_view(self, request)),
                 name="catalog_product_review"),
            path("duplicates/", view(lambda request: admin_duplicates.duplicates_view(
                self, request)), name="catalog_product_duplicates"),
            path("duplicates/decide/", view(lambda request: admin_duplicates.duplicate_decide_view(
                self, request)), name="catalog_product_duplicate_decide"),
            path("<path:object_id>/decide/",
                 view(lambda request, object_id: admin_review.decide_view(self, request,
                                                                          object_id)),
                 name="catalog_product_decide"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}),
                         "can_classify": self.has_change_permission(request),
                         "review_count": selectors.products_needing_review_count(),
                         "duplicate_count": selectors.duplicate_candidates_undecided().count(),
                         "needs_review_query": f"review_status__exact={ReviewStatus.NEEDS_REVIEW}"}
        return super().changelist_view(request, extra_context=extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        product = self.get_object(request, object_id)
        if product is not None:
            extra_context = {**(extra_context or {}), "review_panel":
                             admin_review.product_panel_context(self, request, product),
                             "similar": admin_duplicates.similar_panel_context(product)}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def _start_job(self, request, *, products, scope: str) -> None:
        try:
            job = services.classification_job_start(products=products, created_by=request.user,
                                                    scope=scope)
        except ClassifierError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        url = reverse("admin:classifier_classificationjob_change", args=[job.pk])
        self.message_user(request, format_html(
            'Classifying {} products in the background: <a href="{}">job #{}</a>.',
            job.total, url, job.pk))
