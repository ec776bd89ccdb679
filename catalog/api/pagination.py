"""Page-number pagination whose cost stays flat however large the catalog grows."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

# Results are counted up to this many and no further. An exact COUNT(*) reads every matching
# row, so its cost grows with the catalog (and a search's count scans the whole table); a
# bounded count stops early. 1,000 results is 42 pages of 24: further than shoppers page, who
# narrow with a category or a search instead ("1,000+ results"). Pages past the cap answer 404.
MAX_COUNTED_RESULTS = 1_000


class CappedCountPaginator(Paginator):
    """A Django paginator that counts at most ``MAX_COUNTED_RESULTS`` rows (one bounded query)."""

    @cached_property
    def count(self) -> int:
        if not hasattr(self.object_list, "order_by"):
            return len(self.object_list)
        bounded = self.object_list.order_by()[: MAX_COUNTED_RESULTS + 1]
        return bounded.count()

    @property
    def count_is_exact(self) -> bool:
        return self.count <= MAX_COUNTED_RESULTS

    @cached_property
    def num_pages(self) -> int:
        # Only pages within the counted results can be asked for.
        visible = min(self.count, MAX_COUNTED_RESULTS)
        if visible == 0 and not self.allow_empty_first_page:
            return 0
        return max(1, -(-visible // self.per_page))


class StorefrontPagination(PageNumberPagination):
    """``?page=N&page_size=M``: 24 per page by default, at most 100."""

    # 24 fills a 2-, 3-, 4- or 6-column product grid; 100 bounds one response's size and time.
    page_size = 24
    max_page_size = 100
    page_size_query_param = "page_size"
    django_paginator_class = CappedCountPaginator

    def get_paginated_response(self, data) -> Response:
        paginator = self.page.paginator
        return Response({
            "count": min(paginator.count, MAX_COUNTED_RESULTS),
            "count_is_exact": paginator.count_is_exact,
            "next": self.get_next_link(),
            "previous": self.get_previous_link(),
            "results": data,
        })

    def get_paginated_response_schema(self, schema: dict) -> dict:
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count_is_exact"] = {
            "type": "boolean",
            "description": f"False when more than {MAX_COUNTED_RESULTS:,} results match; "
                           "`count` then stops at that number.",
        }
        response["required"] = ["count", "count_is_exact", "results"]
        return response
