"""Retries, timeouts and typed errors of AppwriteStorage against injected emulator faults.

The test settings allow 2 retries (3 attempts) and a 1 s timeout (tests/support/appwrite_django).
"""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from catalog.appwrite import MAX_RETRY_AFTER_SECONDS, file_id_for_name, retry_delay
from catalog.exceptions import StorageError, StorageUnavailableError

DOWNLOAD = r"/download$"


@pytest.fixture
def stored(appwrite_storage):
    """A small stored file and the emulator; the request log starts empty."""
    name = default_storage.save("products/p/a.jpg", ContentFile(b"payload"))
    appwrite_storage.emulator.requests_log.clear()
    return name, appwrite_storage.emulator


@pytest.mark.parametrize("fault", [
    {"status": 503}, {"status": 500, "json_body": False}, {"status": 429, "retry_after": 0},
    {"drop": True}, {"status": 502, "json_body": False, "omit_content_type": True},
    {"truncate": 3},
    {"status": 200, "body": b'{"message": "half', "content_type": "application/json"},
], ids=["503", "500-html", "429", "dropped-connection", "502-no-content-type", "truncated",
        "200-invalid-json"])
def test_transient_faults_are_retried_until_the_read_succeeds(stored, fault):
    name, emu = stored
    emu.inject("GET", DOWNLOAD, times=2, **fault)
    assert default_storage.open(name).read() == b"payload"
    assert len(emu.requests_to(DOWNLOAD)) == 3


@pytest.mark.parametrize("fault", [
    {"status": 502, "omit_content_type": True},
    {"status": 200, "body": b"<html>gateway</html>", "content_type": "text/html"},
    {"status": 200, "body": b'{"$id": "cut', "content_type": "application/json"},
], ids=["502-no-content-type", "200-html", "200-invalid-json"])
def test_a_metadata_answer_the_sdk_cannot_read_is_retried(stored, fault):
    name, emu = stored
    emu.inject("GET", rf"/files/{file_id_for_name(name)}$", times=2, **fault)
    assert default_storage.size(name) == len(b"payload")
    assert len(emu.requests_to(rf"/files/{file_id_for_name(name)}$")) == 3


def test_persistent_503_gives_up_after_the_retry_limit_with_a_clear_error(stored):
    name, emu = stored
    emu.inject("GET", DOWNLOAD, status=503, times=None)
    with pytest.raises(StorageUnavailableError) as caught:
        default_storage.open(name)
    assert len(emu.requests_to(DOWNLOAD)) == 3
    message = str(caught.value)
    assert "after 3 attempts" in message and "HTTP 503" in message
    assert "APPWRITE_ENDPOINT" in message and name in message


def test_a_client_error_is_not_retried(stored):
    name, emu = stored
    emu.inject("GET", DOWNLOAD, status=401, times=None)
    with pytest.raises(StorageError) as caught:
        default_storage.open(name)
    assert not isinstance(caught.value, StorageUnavailableError)
    assert len(emu.requests_to(DOWNLOAD)) == 1
    assert "APPWRITE_API_KEY" in str(caught.value)


def test_a_reply_slower_than_the_timeout_is_a_timeout_and_is_retried(stored):
    name, emu = stored
    emu.inject("GET", DOWNLOAD, delay=1.5, times=1)
    assert default_storage.open(name).read() == b"payload"
    assert len(emu.requests_to(DOWNLOAD)) == 2


def test_always_slow_replies_give_up_reporting_a_timeout(stored):
    name, emu = stored
    emu.inject("GET", DOWNLOAD, delay=1.5, times=None)
    with pytest.raises(StorageUnavailableError, match="timeout"):
        default_storage.open(name)
    assert len(emu.requests_to(DOWNLOAD)) == 3


def test_missing_bucket_is_a_storage_error_naming_the_setting(appwrite_storage, settings):
    from catalog.storage import AppwriteStorage

    with pytest.raises(StorageError, match="APPWRITE_BUCKET_ID") as caught:
        AppwriteStorage(bucket_id="no-such-bucket").exists("a.jpg")
    assert "no-such-bucket" in str(caught.value)


def test_upload_recovers_from_a_503_and_stores_the_file_once(appwrite_storage):
    emu = appwrite_storage.emulator
    emu.inject("POST", r"/files$", status=503, times=1)
    name = default_storage.save("products/p/b.jpg", ContentFile(b"bytes"))
    assert [f["$id"] for f in emu.files(appwrite_storage.bucket_id)] == [file_id_for_name(name)]
    assert len(emu.requests_to(r"/files$", method="POST")) == 2


def test_upload_whose_answer_timed_out_is_retried_without_a_duplicate(appwrite_storage):
    emu = appwrite_storage.emulator
    emu.inject("POST", r"/files$", delay=1.5, times=1)  # Stored after the client gave up.
    name = default_storage.save("products/p/c.jpg", ContentFile(b"late"))
    assert default_storage.open(name).read() == b"late"
    assert len(emu.files(appwrite_storage.bucket_id)) == 1


def test_large_upload_with_a_failed_chunk_is_restarted_and_completes(appwrite_storage):
    emu = appwrite_storage.emulator
    data = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB: two chunks
    # Faults are used in order: the first chunk passes (a tiny delay), the second gets a 503.
    emu.inject("POST", r"/files$", delay=0.001, times=1)
    emu.inject("POST", r"/files$", status=503, times=1)
    name = default_storage.save("big/c.bin", ContentFile(data))
    assert default_storage.open(name).read() == data
    # The half-assembled upload was discarded and the file uploaded again from the start.
    assert len(emu.requests_to(r"/files/[^/]+$", method="DELETE")) == 1
    assert len(emu.requests_to(r"/files$", method="POST")) == 4


def test_retry_after_is_honoured_up_to_a_cap():
    assert retry_delay(0, retry_after=3) >= 3
    assert retry_delay(0, retry_after=10_000) == MAX_RETRY_AFTER_SECONDS
    assert 0 <= retry_delay(10) <= 8
