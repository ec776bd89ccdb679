"""django-q2 tasks for the catalog (thin wrappers over services, referred to by dotted path)."""

from catalog import services


def product_image_check(product_id: int) -> bool:
    return services.product_image_check(product_id=product_id)
