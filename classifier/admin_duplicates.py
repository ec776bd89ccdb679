"""The duplicates page (likely duplicate products side by side) and the product page's similar row.

Thin admin views over ``classifier.services`` (decisions, unpublishing through the catalog
service) and the duplicate selectors. Decisions are plain POST forms that redirect back.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from catalog.models import Product
from catalog.storage import thumbnail_url
from classifier import selectors, services
from classifier.exceptions import ClassifierError
from classifier.services.similarity_index import REFRESH_TASK, active_backbone, index_state

# Pairs per page: each pair is two large images, so a screen or two of them.
PAIRS_PER_PAGE = 20
# Image size of a pair's pictures (2x a 200-CSS-pixel column) and of the similar row.
PAIR_IMAGE_PX = 400
SIMILAR_IMAGE_PX = 160
# Similar products shown on a product's page: one row on a laptop screen.
SIMILAR_ON_PRODUCT_PAGE = 8


def duplicates_view(model_admin, request):
    """GET: undecided duplicate candidates of the last scan, most alike first."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    page = Paginator(selectors.duplicate_candidates_undecided(), PAIRS_PER_PAGE).get_page(
        request.GET.get("page"))
    pairs = [{"candidate": c, "sides": [_side(c.product_a), _side(c.product_b)]} for c in page]
    backbone = active_backbone()
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta,
        "title": "Likely duplicates", "pairs": pairs, "page": page,
        "scan": _scan_summary(backbone), "backbone": backbone,
        "not_embedded": (selectors.products_without_current_embedding(backbone=backbone).count()
                         if backbone else 0),
        "can_decide": model_admin.has_change_permission(request),
        "here": request.get_full_path(),
    }
    return TemplateResponse(request, "admin/catalog/product/duplicates.html", context)


def duplicate_decide_view(model_admin, request):
    """POST ``a``, ``b`` (product ids) and ``decision``: ``not_duplicate``, ``unpublish_a``
    (``a`` is the copy) or ``unpublish_b``; or ``rescan`` to rebuild the scan now."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    decision = request.POST.get("decision", "")
    try:
        message = _rescan() if decision == "rescan" else _decide(request, decision)
    except ClassifierError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("admin:catalog_product_duplicates")
    return HttpResponseRedirect(target)


def similar_panel_context(product: Product) -> list[dict]:
    """The product page's row of look-alikes (drafts included: staff see the whole catalog)."""
    similar = services.similar_products(product=product, limit=SIMILAR_ON_PRODUCT_PAGE,
                                        published_only=False)
    return [{"product": s.product, "score": s.score,
             "image": thumbnail_url(s.product.image, size=SIMILAR_IMAGE_PX)
             if s.product.image else ""} for s in similar]


def _scan_summary(backbone: str | None) -> dict | None:
    state = index_state(backbone) if backbone else None
    if state is None:
        return None
    return {**state, "at": datetime.fromisoformat(state["snapshot_at"])}


def _side(product: Product) -> dict:
    return {"product": product,
            "image": thumbnail_url(product.image, size=PAIR_IMAGE_PX) if product.image else ""}


def _decide(request, decision: str) -> str:
    ids = _ids(request)
    products = Product.objects.in_bulk(ids)
    a, b = (products.get(pk) for pk in ids)
    if a is None or b is None or a.pk == b.pk:
        raise ClassifierError("Those two products no longer exist (deleted meanwhile?). Reload "
                              "the page.")
    if decision == "not_duplicate":
        services.duplicate_pair_dismiss(product_a=a, product_b=b, user=request.user)
        return f"{a.sku} and {b.sku}: not duplicates; the pair will not be listed again."
    if decision in ("unpublish_a", "unpublish_b"):
        copy, original = (a, b) if decision == "unpublish_a" else (b, a)
        services.duplicate_pair_unpublish_copy(copy=copy, original=original, user=request.user)
        return f"{copy.sku} unpublished as a duplicate of {original.sku}."
    raise ClassifierError("Choose one of the buttons; the decision sent is unknown. Reload the "
                          "page.")


def _ids(request) -> tuple[int, int]:
    try:
        return int(request.POST.get("a", "")), int(request.POST.get("b", ""))
    except ValueError:
        raise ClassifierError("The form lacks the two products' ids. Reload the page.") from None


def _rescan() -> str:
    from django_q.tasks import async_task

    async_task(REFRESH_TASK, force=True, task_name="similarity-index-rescan")
    return "Scanning for duplicates in the background; reload this page in a minute."
