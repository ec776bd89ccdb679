"""Catalog import: products and categories from CSV / JSON Lines, idempotent by SKU (or slug)."""
