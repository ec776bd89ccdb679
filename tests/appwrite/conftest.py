"""Makes the Appwrite fixtures available here until the root conftest registers the plugin.

Once `pytest_plugins = ["tests.support.appwrite_fixtures"]` is in the root conftest, this file
can be deleted (keeping it would give tests here their own session emulator).
"""

from tests.support.appwrite_fixtures import appwrite_bucket, appwrite_emulator  # noqa: F401
