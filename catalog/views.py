"""The media proxy: product images from a private Appwrite bucket, served with HTTP caching."""

import hashlib

from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.views.decorators.http import require_GET

from catalog.exceptions import ImageNotFoundError, StorageError, StorageUnavailableError
from catalog.models import Product
from catalog.storage import media_bytes

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
