"""Fixtures for catalog tests: Django storage on the Appwrite emulator, an active model row."""

import re

import pytest
from django.core.files.storage import default_storage

from tests.support.appwrite_django import use_appwrite_storage
from tests.support.appwrite_emulator import AppwriteEmulator
from tests.support.appwrite_fixtures import AppwriteBucket


@pytest.fixture
def appwrite_storage(settings, appwrite_bucket, monkeypatch):
    """Default and models storage on the emulator (private bucket); returns the bucket."""
    use_appwrite_storage(settings, appwrite_bucket, monkeypatch)
    assert default_storage.bucket_id == appwrite_bucket.bucket_id
    return appwrite_bucket


@pytest.fixture
def active_model(db):
    """An active model version row: classification jobs can be created (nothing runs them here:
    these tests are about which products get queued, not about inference)."""
    from classifier.models import ModelVersion
    from tests.support.tiny_model import tiny_contract

    return ModelVersion.objects.create(number=1, labels=["red"], architecture="tiny",
                                       input_contract=tiny_contract().to_dict(),
                                       checksum="0" * 64, is_active=True)


def queued_products(scope_prefix: str = "auto") -> list[list[int]]:
    """Product ids of each classification job queued so far (auto-classification by default)."""
    from classifier.models import ClassificationJob

    jobs = ClassificationJob.objects.filter(scope__startswith=scope_prefix).order_by("pk")
    return [job.product_ids for job in jobs]


class PublicReadEmulator(AppwriteEmulator):
    """The emulator plus Appwrite's anonymous access to buckets with ``read("any")``.

    Appwrite lets a browser GET ``/view``, ``/preview`` and ``/download`` with no key when the
    bucket grants read to any, taking the project from the ``project`` query parameter; the
    shared emulator only knows API-key callers. (Candidate for tests/support/appwrite_emulator.)
    """

    def _authenticate(self, request):
        if request.method == "GET" and re.search(r"/files/[^/]+/(view|preview|download)$",
                                                 request.path):
            bucket = self._buckets.get(request.path.split("/")[4])
            if (request.query_value("project") == self.project_id and bucket is not None
                    and 'read("any")' in bucket.permissions
                    and not request.headers.get("X-Appwrite-Key")):
                return
        super()._authenticate(request)


@pytest.fixture(scope="session")
def public_read_emulator():
    with PublicReadEmulator() as emulator:
        yield emulator


@pytest.fixture
def public_appwrite_storage(settings, public_read_emulator, monkeypatch):
    """Default storage on a public (read("any")) bucket with APPWRITE_PUBLIC_BUCKET on."""
    emu = public_read_emulator
    emu.reset()
    emu.create_bucket("public-bucket", permissions=['read("any")'])
    bucket = AppwriteBucket(bucket_id="public-bucket", endpoint=emu.endpoint,
                            project_id=emu.project_id, api_key=emu.api_key, emulator=emu)
    use_appwrite_storage(settings, bucket, monkeypatch, PUBLIC_BUCKET=True)
    return bucket


@pytest.fixture
def local_storage(settings):
    """Local file storage even when CATALOG_TEST_STORAGE=appwrite runs the suite on Appwrite."""
    local = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    settings.STORAGES = {**settings.STORAGES, "default": local, "models": local}
    settings.USE_APPWRITE = False
