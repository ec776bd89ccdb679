"""Query-string filters for the product list (django-filter) and a pagination-safe ordering."""

import django_filters
from rest_framework.filters import OrderingFilter

from catalog.models import Product, ReviewStatus
from catalog.selectors import category_subtree_ids


class ProductFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(
        method="filter_category",
        help_text="A category slug; products of its sub-categories are included.",
    )
    review_status = django_filters.ChoiceFilter(
        choices=ReviewStatus.choices, help_text="Classifier review state (useful to staff).",
    )

    class Meta:
        model = Product
        fields = ["category", "review_status"]

    def filter_category(self, queryset, name, value):
        return queryset.filter(category__in=category_subtree_ids(slug=value))


class StableOrderingFilter(OrderingFilter):
    """``?ordering=`` with the primary key appended, so equal values never reorder across pages."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if ordering and not {"id", "-id", "pk", "-pk"} & set(ordering):
            ordering.append("-id" if ordering[0].startswith("-") else "id")
        return ordering
