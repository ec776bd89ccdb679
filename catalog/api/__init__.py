"""The storefront REST API for categories and products, and the API-wide building blocks."""
