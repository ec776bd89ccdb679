"""REST API for on-demand classification, classification jobs and model versions."""
