"""The Appwrite emulator behaves like Appwrite Storage when driven by the real `appwrite` SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests
from appwrite.exception import AppwriteException
from appwrite.id import ID
from appwrite.input_file import InputFile
from appwrite.permission import Permission
from appwrite.query import Query
from appwrite.role import Role
from PIL import Image

from tests.support.appwrite_emulator import CHUNK_SIZE
from tests.support.appwrite_fixtures import appwrite_storage_client

# Above the SDK's 5 MiB chunk size, so the SDK probes and uploads 3 chunks in parallel.
LARGE_SIZE = 11 * 1024 * 1024
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def png_bytes(width: int = 200, height: int = 100, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def upload(storage, bucket_id: str, data: bytes, name: str, **kwargs):
    return storage.create_file(bucket_id, kwargs.pop("file_id", ID.unique()),
                               InputFile.from_bytes(data, name), **kwargs)


def raw(bucket, method: str, path: str, **kwargs) -> requests.Response:
    """A request with the SDK's auth headers, for wire details the SDK hides."""
    headers = {"X-Appwrite-Project": bucket.project_id, "X-Appwrite-Key": bucket.api_key,
               **kwargs.pop("headers", {})}
    kwargs.setdefault("timeout", 10)
    return requests.request(method, bucket.endpoint + path, headers=headers, **kwargs)


@pytest.fixture
def storage(appwrite_bucket):
    return appwrite_storage_client(appwrite_bucket)


def test_small_file_round_trip_keeps_bytes_and_reports_every_file_field(storage,
                                                                        appwrite_bucket):
    data = png_bytes()
    created = upload(storage, appwrite_bucket.bucket_id, data, "red.png",
                     permissions=[Permission.read(Role.any())], folder="photos/2026")

    assert storage.get_file_download(appwrite_bucket.bucket_id, created.id) == data
    assert created.signature == hashlib.md5(data).hexdigest()
    assert (created.mimetype, created.sizeoriginal, created.sizeactual) == (
        "image/png", len(data), len(data))
    assert (created.chunkstotal, created.chunksuploaded) == (1, 1)
    assert (created.folder, created.key) == ("photos/2026/", "photos/2026/red.png")
    assert created.permissions == ['read("any")']
    assert ISO_MS.fullmatch(created.createdat) and ISO_MS.fullmatch(created.updatedat)
    assert storage.get_file(appwrite_bucket.bucket_id, created.id).to_dict() == created.to_dict()


def test_large_file_is_uploaded_in_parallel_chunks_and_reassembled(storage, appwrite_bucket):
    data = os.urandom(LARGE_SIZE)
    file_id = ID.unique()

    created = upload(storage, appwrite_bucket.bucket_id, data, "big.bin", file_id=file_id)

    assert (created.chunkstotal, created.chunksuploaded) == (3, 3)
    assert created.signature == hashlib.md5(data).hexdigest()
    assert created.mimetype == "application/octet-stream"
    assert storage.get_file_download(appwrite_bucket.bucket_id, file_id) == data
    emu = appwrite_bucket.emulator
    assert len(emu.requests_to(r"/files$", "POST")) == 3
    assert len(emu.requests_to(rf"/files/{file_id}$", "GET")) == 1  # the resume probe


def test_resume_probe_continues_a_partial_upload_and_skips_a_finished_one(storage,
                                                                          appwrite_bucket):
    data = os.urandom(LARGE_SIZE)
    file_id = ID.unique()
    first = raw(appwrite_bucket, "POST", f"/storage/buckets/{appwrite_bucket.bucket_id}/files",
                headers={"content-range": f"bytes 0-{CHUNK_SIZE - 1}/{LARGE_SIZE}",
                         "x-appwrite-id": file_id},
                data={"fileId": file_id}, files={"file": ("big.bin", data[:CHUNK_SIZE])})
    assert first.status_code == 201
    assert (first.json()["chunksUploaded"], first.json()["chunksTotal"]) == (1, 3)
    assert first.json()["signature"] == "" and first.json()["compression"] == ""

    resumed = upload(storage, appwrite_bucket.bucket_id, data, "big.bin", file_id=file_id)
    posts_after_resume = len(appwrite_bucket.emulator.requests_to(r"/files$", "POST"))
    again = upload(storage, appwrite_bucket.bucket_id, data, "big.bin", file_id=file_id)

    assert posts_after_resume == 3  # our first chunk + the 2 the SDK still had to send
    assert resumed.chunksuploaded == 3
    assert storage.get_file_download(appwrite_bucket.bucket_id, file_id) == data
    assert len(appwrite_bucket.emulator.requests_to(r"/files$", "POST")) == 3
    assert again.to_dict() == storage.get_file(appwrite_bucket.bucket_id, file_id).to_dict()


def test_duplicate_small_upload_is_409_but_content_range_reupload_is_200(storage,
                                                                         appwrite_bucket):
    created = upload(storage, appwrite_bucket.bucket_id, b"hello", "a.txt")

    with pytest.raises(AppwriteException) as excinfo:
        upload(storage, appwrite_bucket.bucket_id, b"hello", "a.txt", file_id=created.id)
    answer = raw(appwrite_bucket, "POST", f"/storage/buckets/{appwrite_bucket.bucket_id}/files",
                 headers={"content-range": "bytes 0-4/5", "x-appwrite-id": created.id},
                 data={"fileId": created.id}, files={"file": ("a.txt", b"hello")})

    assert (excinfo.value.code, excinfo.value.type) == (409, "storage_file_already_exists")
    assert answer.status_code == 200 and answer.json()["$id"] == created.id


def test_list_pages_through_sixty_files_with_cursors_in_upload_order(storage, appwrite_bucket):
    ids = [upload(storage, appwrite_bucket.bucket_id, f"file {i}".encode(), f"f{i:02}.txt").id
           for i in range(60)]
    seen, cursor = [], []
    while True:
        page = storage.list_files(appwrite_bucket.bucket_id, queries=[Query.limit(25), *cursor])
        seen += [f.id for f in page.files]
        if len(page.files) < 25:
            break
        cursor = [Query.cursor_after(page.files[-1].id)]

    before = storage.list_files(appwrite_bucket.bucket_id,
                                queries=[Query.cursor_before(ids[30]), Query.limit(3)])
    default = storage.list_files(appwrite_bucket.bucket_id)
    assert seen == ids
    assert page.total == 60 and len(default.files) == 25
    assert [f.id for f in before.files] == ids[27:30]


def test_list_queries_filter_order_search_and_count(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    for name in ("apple.txt", "apricot.txt", "banana.txt", "cherry.png"):
        upload(storage, bid, png_bytes() if name.endswith("png") else name.encode(), name)

    def names(**kwargs):
        return [f.name for f in storage.list_files(bid, **kwargs).files]

    assert names(queries=[Query.equal("name", ["banana.txt"])]) == ["banana.txt"]
    assert names(queries=[Query.starts_with("name", "ap")]) == ["apple.txt", "apricot.txt"]
    assert names(queries=[Query.not_equal("mimeType", "text/plain")]) == ["cherry.png"]
    assert names(queries=[Query.order_desc("name"), Query.offset(1), Query.limit(2)]) == [
        "banana.txt", "apricot.txt"]
    assert names(search="cherry") == ["cherry.png"]
    assert names(queries=[Query.search("name", "apr")]) == ["apricot.txt"]
    assert storage.list_files(bid, queries=[Query.limit(1)], total=False).total == 0
    assert storage.list_files(bid, queries=[Query.limit(1)]).total == 4


@pytest.mark.parametrize(("queries", "error_type"), [
    ([Query.cursor_after("does-not-exist")], "general_cursor_not_found"),
    (["not json"], "general_query_invalid"),
    ([Query.equal("secret", ["x"])], "general_query_invalid"),
    ([Query.limit(0)], "general_query_invalid"),
])
def test_list_rejects_bad_queries_with_400(storage, appwrite_bucket, queries, error_type):
    with pytest.raises(AppwriteException) as excinfo:
        storage.list_files(appwrite_bucket.bucket_id, queries=queries)
    assert (excinfo.value.code, excinfo.value.type) == (400, error_type)


def test_update_changes_name_and_permissions_and_keeps_omitted_permissions(storage,
                                                                           appwrite_bucket):
    created = upload(storage, appwrite_bucket.bucket_id, b"x", "old.txt")

    renamed = storage.update_file(appwrite_bucket.bucket_id, created.id, name="new.txt",
                                  permissions=[Permission.write(Role.users())])
    kept = storage.update_file(appwrite_bucket.bucket_id, created.id)

    assert renamed.name == "new.txt"
    assert renamed.permissions == ['update("users")', 'delete("users")']
    assert kept.permissions == renamed.permissions and kept.name == "new.txt"


def test_deleted_file_answers_404_storage_file_not_found(storage, appwrite_bucket):
    created = upload(storage, appwrite_bucket.bucket_id, b"x", "gone.txt")

    assert storage.delete_file(appwrite_bucket.bucket_id, created.id) == b""
    for call in (storage.get_file, storage.get_file_download, storage.delete_file):
        with pytest.raises(AppwriteException) as excinfo:
            call(appwrite_bucket.bucket_id, created.id)
        assert (excinfo.value.code, excinfo.value.type) == (404, "storage_file_not_found")


def test_bucket_is_checked_before_file_and_auth_before_both(storage, appwrite_bucket):
    with pytest.raises(AppwriteException) as missing_bucket:
        storage.get_file("no-such-bucket", "no-such-file")
    wrong_key = raw(appwrite_bucket, "GET", "/storage/buckets/test-bucket/files",
                    headers={"X-Appwrite-Key": "nope"})
    wrong_project = raw(appwrite_bucket, "GET", "/storage/buckets/test-bucket/files",
                        headers={"X-Appwrite-Project": "other"})

    assert missing_bucket.value.type == "storage_bucket_not_found"
    assert (wrong_key.status_code, wrong_key.json()["type"]) == (401, "user_unauthorized")
    assert (wrong_project.status_code, wrong_project.json()["type"]) == (404, "project_not_found")


def test_upload_checks_extension_case_sensitively_size_and_id(storage, appwrite_emulator,
                                                             appwrite_bucket):
    appwrite_emulator.create_bucket("strict", allowed_extensions=["jpg"], maximum_file_size=10)
    cases = [("a.JPG", b"x", "strict", "unique()", "storage_file_type_unsupported"),
             ("a.jpg", b"x" * 11, "strict", "unique()", "storage_invalid_file_size"),
             ("a.txt", b"x", appwrite_bucket.bucket_id, "_bad", "general_argument_invalid")]
    for name, data, bucket_id, file_id, error_type in cases:
        with pytest.raises(AppwriteException) as excinfo:
            upload(storage, bucket_id, data, name, file_id=file_id)
        assert (excinfo.value.code, excinfo.value.type) == (400, error_type)
    assert upload(storage, "strict", b"x", "a.jpg").name == "a.jpg"


def test_mime_is_sniffed_and_json_downloads_parse_like_appwrite(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    as_json = upload(storage, bid, b'{"a": 1}', "data.bin")
    as_text = upload(storage, bid, b"plain words", "notes.bin")

    assert (as_json.mimetype, as_text.mimetype) == ("application/json", "text/plain")
    assert storage.get_file_download(bid, as_json.id) == {"a": 1}
    assert storage.get_file_download(bid, as_text.id) == b"plain words"


def test_view_keeps_allow_listed_types_and_serves_others_as_text_plain(storage,
                                                                       appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    image = upload(storage, bid, png_bytes(), "a.png")
    html = upload(storage, bid, b"<!DOCTYPE html><html><script>x</script></html>", "a.html")

    image_view = raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{image.id}/view")
    html_view = raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{html.id}/view")
    download = raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{html.id}/download")

    assert image_view.headers["Content-Type"] == "image/png"
    assert html_view.headers["Content-Type"] == "text/plain"
    assert html_view.headers["X-Content-Type-Options"] == "nosniff"
    assert html_view.headers["Content-Disposition"] == 'inline; filename="a.html"'
    assert download.headers["Content-Type"] == "text/html"
    assert download.headers["Content-Disposition"] == 'attachment; filename="a.html"'
    assert storage.get_file_view(bid, image.id) == png_bytes()


def test_range_requests_answer_206_or_416(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"0123456789", "digits.txt")
    path = f"/storage/buckets/{bid}/files/{created.id}/download"

    partial = raw(appwrite_bucket, "GET", path, headers={"Range": "bytes=2-5"})
    beyond = raw(appwrite_bucket, "GET", path, headers={"Range": "bytes=5-10"})

    assert (partial.status_code, partial.content) == (206, b"2345")
    assert partial.headers["Content-Range"] == "bytes 2-5/10"
    assert partial.headers["Accept-Ranges"] == "bytes"
    assert (beyond.status_code, beyond.json()["type"]) == (416, "storage_invalid_range")


def test_preview_resizes_converts_and_is_logged_as_a_preview(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, png_bytes(200, 100), "wide.png")

    by_width = Image.open(io.BytesIO(storage.get_file_preview(bid, created.id, width=50)))
    boxed = Image.open(io.BytesIO(storage.get_file_preview(
        bid, created.id, width=40, height=40, gravity="top-left", output="webp", quality=80)))
    untouched = Image.open(io.BytesIO(storage.get_file_preview(bid, created.id)))

    assert (by_width.format, by_width.size) == ("PNG", (50, 25))
    assert (boxed.format, boxed.size) == ("WEBP", (40, 40))
    assert untouched.size == (200, 100)
    assert len(appwrite_bucket.emulator.requests_to(r"/preview$", "GET")) == 3
    assert appwrite_bucket.emulator.requests_to(r"/preview$")[0].query["width"] == "50"
    assert not appwrite_bucket.emulator.requests_to(r"/download$")


def test_preview_of_non_image_is_an_icon_and_of_a_corrupt_image_is_400(storage,
                                                                       appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    text = upload(storage, bid, b"not an image", "notes.txt")
    corrupt = upload(storage, bid, png_bytes()[:40], "broken.png")

    icon = Image.open(io.BytesIO(storage.get_file_preview(bid, text.id, width=64)))
    with pytest.raises(AppwriteException) as excinfo:
        storage.get_file_preview(bid, corrupt.id, width=64)

    assert (icon.format, icon.width) == ("PNG", 64)
    assert corrupt.mimetype == "image/png"
    assert (excinfo.value.code, excinfo.value.type) == (400, "storage_file_type_unsupported")


def test_injected_503_fails_the_next_two_matching_calls_then_recovers(storage,
                                                                     appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    fault = appwrite_bucket.emulator.inject(method="GET", path_regex=r"/download$", status=503,
                                            times=2)

    codes = []
    for _ in range(2):
        with pytest.raises(AppwriteException) as excinfo:
            storage.get_file_download(bid, created.id)
        codes.append(excinfo.value.code)

    assert codes == [503, 503]
    assert storage.get_file(bid, created.id).id == created.id  # other paths unaffected
    assert storage.get_file_download(bid, created.id) == b"payload"
    assert fault.hits == 2 and fault.exhausted


def test_injected_429_carries_retry_after_and_404_looks_like_a_missing_file(storage,
                                                                           appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    emu = appwrite_bucket.emulator
    emu.inject(path_regex=r"/download$", status=429, retry_after=7)
    emu.inject(path_regex=rf"/files/{created.id}$", status=404)

    limited = raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{created.id}/download")
    with pytest.raises(AppwriteException) as excinfo:
        storage.get_file(bid, created.id)

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert limited.json()["type"] == "general_rate_limit_exceeded"
    assert (excinfo.value.code, excinfo.value.type) == (404, "storage_file_not_found")


def test_injected_drop_is_a_connection_error_for_the_sdk(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    appwrite_bucket.emulator.inject(method="GET", path_regex=r"/download$", drop=True)

    with pytest.raises(AppwriteException) as excinfo:
        storage.get_file_download(bid, created.id)

    assert excinfo.value.code == 0 and excinfo.value.type is None
    assert storage.get_file_download(bid, created.id) == b"payload"


def test_injected_delay_outlasts_a_client_timeout_then_serves_normally(storage,
                                                                       appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    emu = appwrite_bucket.emulator
    emu.inject(path_regex=r"/download$", delay=0.5, times=2)
    path = f"/storage/buckets/{bid}/files/{created.id}/download"

    with pytest.raises(requests.exceptions.ReadTimeout):
        raw(appwrite_bucket, "GET", path, timeout=0.05)
    slow = storage.get_file_download(bid, created.id)

    assert slow == b"payload"
    assert len(emu.requests_to(r"/download$")) == 2


def test_injected_502_without_content_type_sends_no_content_type_header(storage,
                                                                        appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    appwrite_bucket.emulator.inject("GET", r"/download$", status=502, json_body=False,
                                    omit_content_type=True)

    answer = raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{created.id}/download")

    assert answer.status_code == 502 and "Content-Type" not in answer.headers
    # The bare SDK cannot read such an answer: it looks the header up unconditionally.
    appwrite_bucket.emulator.inject("GET", r"/download$", status=502, omit_content_type=True)
    with pytest.raises(KeyError):
        storage.get_file_download(bid, created.id)


def test_injected_body_answers_with_that_status_type_and_body(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    appwrite_bucket.emulator.inject("GET", rf"/files/{created.id}$", status=200,
                                    body=b'{"$id": "cut sh', content_type="application/json")

    answer = raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{created.id}")

    assert (answer.status_code, answer.content) == (200, b'{"$id": "cut sh')
    assert answer.headers["Content-Type"] == "application/json"


def test_injected_truncation_declares_the_full_length_and_hangs_up(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"0123456789" * 100, "p.bin")
    appwrite_bucket.emulator.inject("GET", r"/download$", truncate=10)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        raw(appwrite_bucket, "GET", f"/storage/buckets/{bid}/files/{created.id}/download")

    assert storage.get_file_download(bid, created.id) == b"0123456789" * 100


def test_injected_hold_parks_the_request_until_released(storage, appwrite_bucket):
    bid = appwrite_bucket.bucket_id
    created = upload(storage, bid, b"payload", "p.txt")
    gate = threading.Event()
    appwrite_bucket.emulator.inject("GET", r"/download$", hold=gate)
    path = f"/storage/buckets/{bid}/files/{created.id}/download"

    with pytest.raises(requests.exceptions.ReadTimeout):
        raw(appwrite_bucket, "GET", path, timeout=0.3)  # parked: no answer while held
    gate.set()

    assert storage.get_file_download(bid, created.id) == b"payload"


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_receiver():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?src=appwrite", _Receiver.received
    server.shutdown()
    server.server_close()


def test_webhooks_fire_once_per_create_update_delete_with_a_verifiable_signature(
        storage, appwrite_bucket, webhook_receiver):
    url, received = webhook_receiver
    secret = "s3cret-signing-key"
    emu, bid = appwrite_bucket.emulator, appwrite_bucket.bucket_id
    emu.add_webhook(url, ["buckets.*.files.*.create", f"buckets.{bid}.files.*.update",
                          "buckets.*.files.*.delete"], secret=secret)
    emu.add_webhook(url, ["buckets.other.files.*.create"], secret=secret)  # never matches

    file_id = ID.unique()
    upload(storage, bid, os.urandom(LARGE_SIZE), "big.bin", file_id=file_id)
    storage.update_file(bid, file_id, name="renamed.bin")
    storage.delete_file(bid, file_id)
    deliveries = emu.wait_for_deliveries()

    assert [d.events[0].rsplit(".", 1)[1] for d in deliveries] == ["create", "update", "delete"]
    assert all(d.ok for d in deliveries) and len(received) == 3
    headers, body = received[0]
    expected = base64.b64encode(hmac.new(secret.encode(), (url + body.decode()).encode(),
                                         hashlib.sha1).digest()).decode()
    assert headers["X-Appwrite-Webhook-Signature"] == expected
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Appwrite-Webhook-Events"].split(",")[:4] == [
        f"buckets.{bid}.files.{file_id}.create", "buckets.*.files.*.create",
        f"buckets.{bid}.files.*.create", f"buckets.*.files.{file_id}.create"]
    assert headers["X-Appwrite-Webhook-Project-Id"] == appwrite_bucket.project_id
    assert headers["X-Appwrite-Webhook-User-Id"] == ""
    payload = json.loads(body)
    assert (payload["$id"], payload["chunksUploaded"], payload["chunksTotal"]) == (file_id, 3, 3)
    assert b"application\\/octet-stream" in body and b" " not in body
    assert json.loads(received[2][1])["name"] == "renamed.bin"
