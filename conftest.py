"""Root pytest configuration: shared fixtures live in tests/support/ and are registered here."""

import pytest

pytest_plugins = ["tests.support.django_fixtures", "tests.support.appwrite_fixtures",
                  "tests.support.pretrained"]

# Fixtures that mean a test needs the database (and so runs again on PostgreSQL + Redis in CI).
_DB_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server", "admin_client",
                "admin_user", "client", "django_user_model", "qcluster"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        uses_db = item.get_closest_marker("django_db") or _DB_FIXTURES & set(item.fixturenames)
        if not uses_db:
            item.add_marker(pytest.mark.nodb)
