"""Reads for categories and products: the querysets the storefront API and staff tools list."""

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from catalog.models import Category, Product


def _published_count_subquery() -> Coalesce:
    """Published products filed directly under the outer category (0, never NULL, when none).

    A correlated subquery rather than a JOIN + GROUP BY: each count is an index range scan on
    ``product_storefront_idx`` (is_published, category, ...), and no product row is read.
    """
    counts = (
        Product.objects.filter(is_published=True, category=OuterRef("pk"))
        .order_by()
        .values("category")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


def category_list_for_storefront() -> QuerySet[Category]:
    """Categories with their parent, children and published-product counts (two queries).

    ``own_product_count`` counts products filed directly under a category; each prefetched child
    carries its own count, so callers add children's counts to get a parent's total without
    another query.
    """
    children = Category.objects.annotate(own_product_count=_published_count_subquery())
    return (
        Category.objects.select_related("parent")
        .annotate(own_product_count=_published_count_subquery())
        .prefetch_related(Prefetch("children", queryset=children))
    )


def category_subtree_ids(*, slug: str) -> QuerySet:
    """Primary keys of the category with this slug and its sub-categories, as a subquery.

    Categories nest at most two levels (``MAX_CATEGORY_DEPTH``), so "itself or its children"
    is the whole subtree. Used inside ``category__in=`` so the database runs it as one query.
    """
    return Category.objects.filter(Q(slug=slug) | Q(parent__slug=slug)).values("pk")


def product_list_for_storefront(*, include_unpublished: bool = False) -> QuerySet[Product]:
    """Products in storefront order with everything a list row shows, in one query.

    Anonymous shoppers see published products only; staff may ask for all of them. Related rows
    are joined (category and its parent; for staff the predicted category too), so the number of
    queries per page does not depend on the page size.
    """
    products = Product.objects.select_related("category", "category__parent")
    if include_unpublished:
        return products.select_related("predicted_category", "prediction_model_version")
    return products.filter(is_published=True)


def product_list_for_classification(
    *, category_slug: str = "", review_status: str = "", ids: list[int] | None = None,
    published_only: bool = False,
) -> QuerySet[Product]:
    """Products matching a staff filter for a classification job; only those with an image.

    Every given filter narrows the set (AND); none given means every product with an image.
    """
    products = Product.objects.exclude(image="").filter(image_missing=False)
    if category_slug:
        products = products.filter(category__in=category_subtree_ids(slug=category_slug))
    if review_status:
        products = products.filter(review_status=review_status)
    if ids:
        products = products.filter(pk__in=ids)
    if published_only:
        products = products.filter(is_published=True)
    return products.order_by("pk")
