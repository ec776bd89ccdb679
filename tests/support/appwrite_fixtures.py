"""Pytest fixtures that give tests a running Appwrite Storage emulator and a fresh bucket.

Register as a plugin from the root conftest: `pytest_plugins = ["tests.support.appwrite_fixtures"]`.
No Django here, so the emulator tests run without settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from appwrite.client import Client
from appwrite.services.storage import Storage

from tests.support.appwrite_emulator import AppwriteEmulator

# Bucket every `appwrite_bucket` test gets; a fixed id keeps settings and assertions simple.
APPWRITE_TEST_BUCKET_ID = "test-bucket"


@dataclass(frozen=True)
class AppwriteBucket:
    """Everything a test needs to point code at the emulator's bucket."""

    bucket_id: str
    endpoint: str
    project_id: str
    api_key: str
    emulator: AppwriteEmulator


def appwrite_storage_client(emu: Any) -> Storage:
    """An SDK `Storage` service configured for an emulator (or an `AppwriteBucket`)."""
    client = Client().set_endpoint(emu.endpoint).set_project(emu.project_id).set_key(emu.api_key)
    return Storage(client)


@pytest.fixture(scope="session")
def appwrite_emulator() -> Iterator[AppwriteEmulator]:
    """One emulator for the whole session; `appwrite_bucket` resets it per test."""
    with AppwriteEmulator() as emulator:
        yield emulator


@pytest.fixture
def appwrite_bucket(appwrite_emulator: AppwriteEmulator) -> Iterator[AppwriteBucket]:
    """A clean emulator (no files, faults or webhooks) with one empty bucket."""
    appwrite_emulator.reset()
    appwrite_emulator.create_bucket(APPWRITE_TEST_BUCKET_ID, name="Test bucket")
    yield AppwriteBucket(bucket_id=APPWRITE_TEST_BUCKET_ID, endpoint=appwrite_emulator.endpoint,
                         project_id=appwrite_emulator.project_id,
                         api_key=appwrite_emulator.api_key, emulator=appwrite_emulator)
    # Faults left armed would leak into the next test that uses the emulator directly.
    appwrite_emulator.clear_faults()
