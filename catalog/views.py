"""Public pages: a minimal storefront, and the media proxy serving product images from a private
Appwrite bucket with HTTP caching."""

import hashlib

from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from catalog import selectors
from catalog.exceptions import ImageNotFoundError, StorageError, StorageUnavailableError
from catalog.models import Product
from catalog.storage import media_bytes, thumbnail_url

# Thumbnail sides the proxy renders: the admin's 160 px up to a storefront's retina tile; a cap
# keeps anonymous callers from asking Appwrite for huge resizes.
MIN_THUMBNAIL_SIZE, MAX_THUMBNAIL_SIZE = 16, 1024
# A name's bytes never change (a new image gets a new name with a random part), so browsers and
# CDNs may keep a response for a day; thumbnails also stay in the Django cache that long.
MAX_AGE_SECONDS = 86_400
# Only thumbnails go into the Django cache: small, and each is an Appwrite image transformation.
THUMBNAIL_CACHE_MAX_BYTES = 256 * 1024


@require_GET
def media_proxy(request, name: str):
    """Serve a product image, or with ``?size=N`` an N x N webp thumbnail of it.

    404 unless a product uses the name.
    """
    size = request.GET.get("size")
    if size is not None and not (size.isdigit()
                                 and MIN_THUMBNAIL_SIZE <= int(size) <= MAX_THUMBNAIL_SIZE):
        return HttpResponseBadRequest(f"size must be {MIN_THUMBNAIL_SIZE}-{MAX_THUMBNAIL_SIZE}.")
    # Only names a product uses: the bucket may also hold model files, which are not public.
    if not Product.objects.filter(image=name).exists():
        raise Http404("No product uses this image.")
    etag = '"' + hashlib.sha256(f"{name}?{size}".encode()).hexdigest()[:32] + '"'
    if etag in request.headers.get("If-None-Match", ""):
        return _cached(HttpResponse(status=304), etag)
    try:
        data, content_type = _thumbnail_or_original(name, int(size) if size else None)
    except ImageNotFoundError as exc:
        raise Http404(str(exc)) from exc
    except StorageUnavailableError as exc:
        return HttpResponse(str(exc), status=503, headers={"Retry-After": "30"})
    except StorageError as exc:
        return HttpResponse(str(exc), status=502)
    response = HttpResponse(data, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return _cached(response, etag)


def _thumbnail_or_original(name: str, size: int | None) -> tuple[bytes, str]:
    if not size:
        return media_bytes(name)
    key = "media-proxy:" + hashlib.sha256(f"{name}?{size}".encode()).hexdigest()
    hit = cache.get(key)
    if hit is None:
        hit = media_bytes(name, size=size)
        if len(hit[0]) <= THUMBNAIL_CACHE_MAX_BYTES:
            cache.set(key, hit, MAX_AGE_SECONDS)
    return hit


def _cached(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return response


# Products per storefront page: a 4 x 6 grid on a desktop.
STOREFRONT_PAGE_SIZE = 24


@require_GET
def storefront(request):
    """A minimal shop front: published products, by category, paged (the admin's "View site").

    The real storefront is the shop's own site on the REST API; this page shows what that API
    publishes, without writing any code.
    """
    # PostgreSQL refuses NUL in any query parameter; no slug holds one.
    slug = request.GET.get("category", "").replace("\x00", "")
    products = selectors.product_list_for_storefront()
    if slug:
        products = products.filter(category__in=selectors.category_subtree_ids(slug=slug))
    page = Paginator(products.order_by("-created_at", "-id"), STOREFRONT_PAGE_SIZE).get_page(
        request.GET.get("page"))
    return render(request, "catalog/storefront.html", {
        "page": page, "categories": _category_menu(), "current": slug,
        "filter_query": f"{urlencode({'category': slug})}&" if slug else "",
        "products": [(p, thumbnail_url(p.image, size=320)) for p in page],
    })


def _category_menu() -> list[tuple]:
    """``(category, published products, is_child)`` in tree order; a parent counts its children."""
    menu = []
    for top in (c for c in selectors.category_list_for_storefront() if c.parent_id is None):
        children = list(top.children.all())
        menu.append((top, top.own_product_count + sum(c.own_product_count for c in children),
                     False))
        menu += [(child, child.own_product_count, True) for child in children]
    return menu
