"""Point Django at the Appwrite emulator: STORAGES, settings.APPWRITE and the environment.

Used by the `appwrite_storage` fixture and, with ``CATALOG_TEST_STORAGE=appwrite``, by the
autouse media fixture so the whole app suite runs with Appwrite as the default storage.
"""

from __future__ import annotations

from typing import Any

# Test settings: a short timeout so a fault-injected delay is a timeout within a second, and
# few retries so a test that exhausts them stays quick.
TEST_TIMEOUT_SECONDS = 1.0
TEST_MAX_RETRIES = 2
MODELS_BUCKET_ID = "test-models"


def use_appwrite_storage(settings, bucket, monkeypatch, **appwrite: Any) -> None:
    """Make ``default`` and ``models`` storages AppwriteStorage on the emulator's buckets.

    ``appwrite`` overrides keys of settings.APPWRITE (e.g. ``PUBLIC_BUCKET=True``). The same
    values go into the environment so a `qcluster` subprocess started by the test uses them too.
    """
    emulator = bucket.emulator
    if not any(b["$id"] == MODELS_BUCKET_ID for b in _buckets(emulator)):
        emulator.create_bucket(MODELS_BUCKET_ID, name="Test models")
    config = {
        **settings.APPWRITE, "ENDPOINT": bucket.endpoint, "PROJECT_ID": bucket.project_id,
        "API_KEY": bucket.api_key, "BUCKET_ID": bucket.bucket_id,
        "MODELS_BUCKET_ID": MODELS_BUCKET_ID, "TIMEOUT": TEST_TIMEOUT_SECONDS,
        "MAX_RETRIES": TEST_MAX_RETRIES, **appwrite,
    }
    settings.APPWRITE = config
    settings.USE_APPWRITE = True
    backend = "catalog.storage.AppwriteStorage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": backend, "OPTIONS": {"bucket_id": config["BUCKET_ID"]}},
        "models": {"BACKEND": backend, "OPTIONS": {"bucket_id": config["MODELS_BUCKET_ID"]}},
    }
    for key, value in config.items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        monkeypatch.setenv(f"APPWRITE_{key}", str(value))
    _rebind_callable_storages(monkeypatch)


def _rebind_callable_storages(monkeypatch) -> None:
    """File fields whose storage is a callable (model files) resolved it once, at import.

    Resolve it again so those files also go to the emulator for this test.
    """
    from django.apps import apps

    for model in apps.get_models():
        for field in model._meta.get_fields():
            storage_callable = getattr(field, "_storage_callable", None)
            if storage_callable is not None:
                monkeypatch.setattr(field, "storage", storage_callable())


def _buckets(emulator) -> list[dict[str, Any]]:
    with emulator._lock:
        return [b.model() for b in emulator._buckets.values()]
