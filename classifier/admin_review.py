"""The review page (a grid of uncertain products decided by click or key) and its decide endpoint.

Thin admin views over ``classifier.services.product_review_decide`` and the review selectors.
Every decision is an ordinary POST form, so the page works without JavaScript; ``review.js``
sends the same forms with ``fetch`` (asking for JSON) and moves focus to the next card.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from catalog.models import Category, Product
from catalog.storage import image_url, thumbnail_url
from classifier import selectors, services
from classifier.exceptions import ClassifierError

# Cards per page: enough for a few minutes of keyboard work without reloading (decided cards
# leave the queue, so the next load starts where this one ended).
REVIEW_PAGE_SIZE = 48
# Predictions offered as one-key buttons (1, 2, 3); the category tree covers the rest.
REVIEW_CHOICES = 3
# Card images: 2x a 160-CSS-pixel card on high-density screens.
CARD_IMAGE_PX = 320


@dataclass(frozen=True)
class Choice:
    """One predicted category offered on a card or the product page."""

    rank: int
    category: Category
    confidence: float

    @property
    def percent(self) -> str:
        return f"{self.confidence:.0%}"


def prediction_choices(product: Product, categories: dict[str, Category],
                       limit: int | None = REVIEW_CHOICES) -> list[Choice]:
    """The product's top-k predictions as categories, best first; unknown labels are left out."""
    choices = []
    for entry in (product.prediction_top_k or [])[:limit]:
        category = categories.get(entry.get("label")) if isinstance(entry, dict) else None
        if category is not None:
            choices.append(Choice(len(choices) + 1, category, float(entry.get("confidence", 0))))
    return choices


def category_tree() -> list[Category]:
    """Every category in tree order (a parent, then its children) for the "none of these" picker."""
    categories = list(Category.objects.select_related("parent"))
    children: dict[int | None, list[Category]] = {}
    for category in categories:
        children.setdefault(category.parent_id, []).append(category)
    ordered = []
    for top in children.get(None, []):
        ordered.append(top)
        ordered.extend(children.get(top.pk, []))
    return ordered


def categories_by_slug() -> dict[str, Category]:
    return {c.slug: c for c in Category.objects.select_related("parent")}


def review_view(model_admin, request):
    """GET: the review grid, least certain first, optionally one predicted category only."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    predicted = request.GET.get("predicted", "").replace("\x00", "")  # PostgreSQL refuses NUL
    page = Paginator(selectors.products_for_review(predicted_slug=predicted),
                     REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    by_slug, here = categories_by_slug(), request.get_full_path()
    products = list(page)
    # Without JavaScript a decision reloads the page; the anchor scrolls to the next card.
    anchors = [f"#card-{p.pk}" for p in products[1:]] + ["#content-main"] if products else []
    cards = [{"product": p, "choices": prediction_choices(p, by_slug), "next": here + anchor,
              "image": thumbnail_url(p.image, size=CARD_IMAGE_PX)}
             for p, anchor in zip(products, anchors, strict=True)]
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta,
        "title": "Review predictions", "cards": cards, "page": page, "predicted": predicted,
        "filters": selectors.review_queue_by_predicted_category(),
        "queue_count": selectors.products_needing_review_count(),
        "labels_since_model": selectors.person_labels_since_active_model_count(),
        "retrain_note": _retrain_note(),
        "active_model": selectors.model_version_get_active(),
        "tree": category_tree(), "here": here,
        "filter_query": f"{urlencode({'predicted': predicted})}&" if predicted else "",
    }
    return TemplateResponse(request, "admin/catalog/product/review.html", context)


def decide_view(model_admin, request, object_id):
    """POST ``category=<slug>`` (a person's choice) or ``accept=1`` (the top prediction).

    Answers JSON to ``Accept: application/json`` (review.js), else redirects to ``next``.
    """
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    product = model_admin.get_object(request, object_id)
    if product is None:
        raise Http404("No such product.")
    if not model_admin.has_change_permission(request, product):
        raise PermissionDenied
    try:
        product = _decide(request, product)
    except ClassifierError as exc:
        return _answer(request, ok=False, message=exc.message, status=400)
    return _answer(request, ok=True, product=product, message=(
        f"{product.sku}: {product.category.name} saved."))


def _decide(request, product: Product) -> Product:
    if request.POST.get("accept"):
        return services.product_accept_prediction(product=product, user=request.user)
    category = Category.objects.filter(slug=request.POST.get("category", "")).first()
    if category is None:
        raise ClassifierError("Choose a category from the list; the one sent does not exist "
                              "(was it deleted?). Reload the page.")
    return services.product_review_decide(product=product, category=category, user=request.user)


def _retrain_note() -> str:
    """When the next automatic retrain happens (admin views are the outer layer: they may read
    training, which the classifier's models and services never import)."""
    from training.selectors import retrain_status

    return retrain_status().sentence()


def _answer(request, *, ok: bool, message: str, product: Product | None = None, status=200):
    if "application/json" in request.headers.get("Accept", ""):
        body = {"ok": ok, "message": message,
                "remaining": selectors.products_needing_review_count(),
                "labels_since_model": selectors.person_labels_since_active_model_count(),
                "retrain_note": _retrain_note()}
        if product is not None:
            body["category"] = {"slug": product.category.slug, "name": product.category.name}
        return JsonResponse(body, status=status)
    messages.add_message(request, messages.SUCCESS if ok else messages.ERROR, message)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("admin:catalog_product_review")
    return HttpResponseRedirect(target)


def product_panel_context(model_admin, request, product: Product) -> dict:
    """The product page's preview panel: large image, prediction, top-k with choose buttons."""
    return {
        "image_url": image_url(product.image) if product.image else "",
        "choices": prediction_choices(product, categories_by_slug(), limit=None),
        "confidence": ("" if product.prediction_confidence is None
                       else f"{product.prediction_confidence:.0%}"),
        "can_decide": model_admin.has_change_permission(request, product),
        "decide_url": reverse("admin:catalog_product_decide", args=[product.pk]),
        "next": request.get_full_path(),
    }
