"""Fixtures for catalog tests: Django storage on the Appwrite emulator, a classify stand-in."""

import pytest
from django.core.files.storage import default_storage

from tests.support.appwrite_django import use_appwrite_storage


@pytest.fixture
def appwrite_storage(settings, appwrite_bucket, monkeypatch):
    """Default and models storage on the emulator (private bucket); returns the bucket."""
    use_appwrite_storage(settings, appwrite_bucket, monkeypatch)
    assert default_storage.bucket_id == appwrite_bucket.bucket_id
    return appwrite_bucket


@pytest.fixture
def classify_calls(monkeypatch):
    """Records `product_classify_on_commit` / `classification_job_start` calls.

    A stand-in while the classify helper's services are not on main (the catalog only calls
    them by name); with the real ones merged it still isolates these tests from inference.
    """
    import classifier.services

    calls = []
    monkeypatch.setattr(classifier.services, "product_classify_on_commit",
                        lambda *, product: calls.append(("product", product.pk)), raising=False)

    class Job:
        pk = 1

    def job_start(*, products, created_by=None, scope=""):
        calls.append(("job", sorted(products), scope))
        return Job()

    monkeypatch.setattr(classifier.services, "classification_job_start", job_start,
                        raising=False)
    return calls
