"""REST API for training runs."""
