"""Catalog exports: the product table (CSV / JSON Lines), dataset zips and the audit trail."""
