"""Settings come from the environment: the embedded default, and each switch."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.db import connection

from tests.support.django_fixtures import REPO_ROOT

pytestmark = pytest.mark.nodb

_PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "db_options": s.DATABASES["default"].get("OPTIONS", {}),
    "broker": "redis" if "redis" in s.Q_CLUSTER else ("orm" if "orm" in s.Q_CLUSTER else None),
    "redis": s.Q_CLUSTER.get("redis"),
    "timeout": s.Q_CLUSTER["timeout"], "retry": s.Q_CLUSTER["retry"],
    "storage": s.STORAGES["default"]["BACKEND"],
    "models_storage": s.STORAGES["models"],
    "debug": s.DEBUG,
}))
"""

_OURS = ("DJANGO_", "DATABASE_", "REDIS_", "APPWRITE_", "Q_CLUSTER", "PYTEST_")
_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env={**_CLEAN, **env},
        capture_output=True, text=True, timeout=120,
    )


def _settings(**env) -> dict:
    result = _run({"DJANGO_SETTINGS_MODULE": "config.settings", **env}, "-c", _PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_is_sqlite_orm_broker_and_local_files():
    s = _settings(DJANGO_DEBUG="1")
    assert s["engine"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in s["db_options"]["init_command"]
    assert s["db_options"]["transaction_mode"] == "IMMEDIATE"
    assert s["db_options"]["timeout"] >= 10
    assert s["broker"] == "orm"
    assert s["storage"] == "django.core.files.storage.FileSystemStorage"
    assert s["retry"] > s["timeout"]


def test_without_secret_key_outside_debug_start_up_fails_with_a_fix():
    result = _run({}, "manage.py", "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "DJANGO_DEBUG=1" in result.stderr


def test_database_url_switches_to_postgresql():
    s = _settings(DJANGO_DEBUG="1", DATABASE_URL="postgres://u@db.example:5432/shop")
    assert s["engine"] == "django.db.backends.postgresql"


def test_redis_url_switches_broker_to_redis():
    s = _settings(DJANGO_DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/3")
    assert s["broker"] == "redis" and s["redis"] == "redis://127.0.0.1:6379/3"


def test_partial_appwrite_configuration_is_refused_with_what_is_missing():
    result = _run({"DJANGO_DEBUG": "1", "APPWRITE_ENDPOINT": "http://x/v1"}, "manage.py", "check")
    assert result.returncode != 0
    assert "APPWRITE_API_KEY" in result.stderr and "APPWRITE_BUCKET_ID" in result.stderr


def test_deploy_check_is_clean_with_production_variables():
    env = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
           "DJANGO_ALLOWED_HOSTS": "shop.example.com"}
    result = _run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_sqlite_connections_use_wal_journal():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite-only pragma; this run uses " + connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


_STORAGE_PROBE = """
import json, django
django.setup()
from django.conf import settings as s
from django.core.files.storage import storages
print(json.dumps({
    "default": s.STORAGES["default"], "models": s.STORAGES["models"],
    "default_class": type(storages["default"]).__name__,
    "buckets": [storages["default"].bucket_id, storages["models"].bucket_id],
}))
"""


def test_appwrite_variables_switch_both_storages_to_appwrite_buckets():
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
           "APPWRITE_ENDPOINT": "https://appwrite.example/v1", "APPWRITE_PROJECT_ID": "shop",
           "APPWRITE_API_KEY": "standard_key", "APPWRITE_BUCKET_ID": "images",
           "APPWRITE_MODELS_BUCKET_ID": "models-private"}
    result = _run(env, "-c", _STORAGE_PROBE)
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout.strip().splitlines()[-1])
    assert s["default"]["BACKEND"] == "catalog.storage.AppwriteStorage"
    assert s["default"]["OPTIONS"] == {"bucket_id": "images"}
    assert s["models"]["BACKEND"] == "catalog.storage.AppwriteStorage"
    assert s["models"]["OPTIONS"] == {"bucket_id": "models-private"}
    assert s["default_class"] == "AppwriteStorage"
    assert s["buckets"] == ["images", "models-private"]
