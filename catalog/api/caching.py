"""Conditional GET for API reads: an ETag from the response body, 304 when the client has it."""

from django.utils.cache import (
    get_conditional_response,
    patch_cache_control,
    patch_vary_headers,
    set_response_etag,
)

# How long a CDN or browser may reuse an anonymous storefront response without asking again.
# A minute keeps a burst of shoppers off the servers while a price or stock change still shows
# up quickly; after that, revalidation with the ETag costs a 304.
STOREFRONT_MAX_AGE_SECONDS = 60


class ConditionalGetMixin:
    """Add an ETag and cache headers to successful GETs; answer ``If-None-Match`` with 304.

    The ETag is a hash of the rendered body, so it is exact (it changes when a product, its
    category or the page's membership changes) and costs no query: the work is proportional to
    the page, never to the catalog. Responses differ per user (staff see more), hence the Vary
    on ``Authorization`` and ``Cookie`` and ``private`` for signed-in users.
    """

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in ("GET", "HEAD") or response.status_code != 200:
            return response
        response.render()
        set_response_etag(response)
        patch_vary_headers(response, ("Accept", "Authorization", "Cookie"))
        if request.user and request.user.is_authenticated:
            patch_cache_control(response, private=True, no_cache=True)
        else:
            patch_cache_control(response, public=True, max_age=STOREFRONT_MAX_AGE_SECONDS)
        return get_conditional_response(request, etag=response["ETag"], response=response)
