"""Every JSON answer of the emulator validates against Appwrite's official OpenAPI schemas.

The schemas come from `shared/appwrite/storage-openapi.json` (Appwrite 1.8.1) beside the repo,
or the committed copy in `tests/support/` when `shared/` is absent, so the emulator cannot drift
from the published API.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from tests.support.appwrite_emulator import CHUNK_SIZE

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_SPEC = REPO_ROOT.parent / "shared" / "appwrite" / "storage-openapi.json"
BUNDLED_SPEC = REPO_ROOT / "tests" / "support" / "appwrite-storage-openapi.json"
SPEC_PATH = SHARED_SPEC if SHARED_SPEC.exists() else BUNDLED_SPEC
SPEC = json.loads(SPEC_PATH.read_text())
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"


def _patched_components() -> dict[str, Any]:
    """The spec's schemas with the documented gaps closed, and closed to unknown fields.

    Known gaps (shared/appwrite/README.md, FACTS.md §5), handled here and nowhere else:
    - `file` lacks the SDK 27 / Appwrite 1.9 fields folder, key, sizeActual, encryption and
      compression; they are added as required with their types (compression is "" on a
      pending chunked upload).
    - `bucket` lacks `totalSize`, which Appwrite 1.9's Bucket model emits; added as required.
    - `error.code` is typed string, but the server sends the HTTP status as an int (and the SDK
      reads it as such), so it is checked as an integer.
    Everything else is kept as published; `additionalProperties: false` is added on top so any
    field the emulator invents fails here.
    """
    schemas = copy.deepcopy(SPEC["components"]["schemas"])
    file_extras = {
        "folder": {"type": "string"}, "key": {"type": "string"},
        "sizeActual": {"type": "integer"}, "encryption": {"type": "boolean"},
        "compression": {"type": "string", "enum": ["none", "gzip", "zstd", ""]},
    }
    schemas["file"]["properties"].update(file_extras)
    schemas["file"]["required"] += list(file_extras)
    schemas["bucket"]["properties"]["totalSize"] = {"type": "integer"}
    schemas["bucket"]["required"].append("totalSize")
    schemas["error"]["properties"]["code"] = {"type": "integer"}
    for schema in schemas.values():
        schema["additionalProperties"] = False
    return {"schemas": schemas}


COMPONENTS = _patched_components()


def validator_for(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref, "components": COMPONENTS})


def response_schema_ref(method: str, template: str, status: int) -> str:
    """The `$ref` the spec gives for an operation's answer (its 2xx one when the status is
    unlisted, e.g. the 200 of a complete chunked re-upload, which shares the 201's model)."""
    responses = SPEC["paths"][template][method.lower()]["responses"]
    answer = responses.get(str(status)) or next(
        v for k, v in responses.items() if k.startswith("2") and "content" in v)
    return answer["content"]["application/json"]["schema"]["$ref"]


@pytest.fixture
def api(appwrite_bucket):
    """Raw HTTP with the SDK's headers, so tests see bodies exactly as sent."""

    def call(method: str, path: str, **kwargs) -> requests.Response:
        # Like the SDK: an empty content-type on GET, the body's own type otherwise.
        empty_type = {"content-type": ""} if method == "GET" else {}
        headers = {"X-Appwrite-Project": appwrite_bucket.project_id,
                   "X-Appwrite-Key": appwrite_bucket.api_key, **empty_type,
                   "X-Appwrite-Response-Format": "2.5.0", **kwargs.pop("headers", {})}
        return requests.request(method, appwrite_bucket.endpoint + path, headers=headers,
                                timeout=10, **kwargs)

    return call


def assert_conforms(response: requests.Response, method: str, template: str) -> dict:
    assert response.headers["Content-Type"] == JSON_CONTENT_TYPE
    body = response.json()
    ref = (response_schema_ref(method, template, response.status_code)
           if response.status_code < 400 else "#/components/schemas/error")
    errors = [e.message for e in validator_for(ref).iter_errors(body)]
    assert errors == [], f"{method} {template} -> {response.status_code}: {errors}"
    return body


FILES = "/storage/buckets/{bucketId}/files"
FILE = "/storage/buckets/{bucketId}/files/{fileId}"


def test_file_answers_match_the_file_schema(api, appwrite_bucket):
    files = f"/storage/buckets/{appwrite_bucket.bucket_id}/files"
    chunk_headers = {"content-range": f"bytes 0-{CHUNK_SIZE - 1}/{CHUNK_SIZE + 10}",
                     "x-appwrite-id": "pending"}

    created = assert_conforms(api("POST", files, data={"fileId": "small", "folder": "a/b",
                                                       "permissions[0]": 'read("any")'},
                                  files={"file": ("s.txt", b"hi")}), "POST", FILES)
    pending = assert_conforms(api("POST", files, headers=chunk_headers, data={"fileId": "x"},
                                  files={"file": ("p.bin", os.urandom(CHUNK_SIZE))}),
                              "POST", FILES)
    again = api("POST", files, headers={"content-range": "bytes 0-1/2", "x-appwrite-id": "small"},
                data={"fileId": "small"}, files={"file": ("s.txt", b"hi")})
    assert_conforms(again, "POST", FILES)
    assert_conforms(api("GET", f"{files}/small"), "GET", FILE)
    assert_conforms(api("PUT", f"{files}/small", json={"name": "t.txt"}), "PUT", FILE)

    assert (created["folder"], created["key"], created["compression"]) == ("a/b/", "a/b/s.txt",
                                                                          "none")
    assert (pending["chunksUploaded"], pending["compression"]) == (1, "")
    assert again.status_code == 200


def test_file_list_answers_match_the_file_list_schema(api, appwrite_bucket):
    files = f"/storage/buckets/{appwrite_bucket.bucket_id}/files"
    empty = assert_conforms(api("GET", files), "GET", FILES)
    appwrite_bucket.emulator.add_file(appwrite_bucket.bucket_id, b"x", name="x.txt")
    queries = {"queries[0]": '{"method":"limit","values":[5]}', "total": "false"}

    listed = assert_conforms(api("GET", files, params=queries), "GET", FILES)

    assert empty == {"total": 0, "files": []}
    assert (listed["total"], len(listed["files"])) == (0, 1)


def test_bucket_answers_match_the_bucket_schemas(api, appwrite_bucket):
    created = assert_conforms(
        api("POST", "/storage/buckets", headers={"content-type": "application/json"},
            json={"bucketId": "made", "name": "Made", "allowedFileExtensions": ["png"]}),
        "POST", "/storage/buckets")
    assert_conforms(api("GET", "/storage/buckets/made"), "GET", "/storage/buckets/{bucketId}")
    updated = assert_conforms(api("PUT", "/storage/buckets/made", json={"name": "Renamed"}),
                              "PUT", "/storage/buckets/{bucketId}")
    listed = assert_conforms(api("GET", "/storage/buckets"), "GET", "/storage/buckets")

    assert created["allowedFileExtensions"] == ["png"] and updated["name"] == "Renamed"
    assert {b["$id"] for b in listed["buckets"]} == {"made", appwrite_bucket.bucket_id}


def test_error_answers_match_the_error_schema_and_are_not_cached(api, appwrite_bucket):
    bucket = f"/storage/buckets/{appwrite_bucket.bucket_id}"
    appwrite_bucket.emulator.add_file(appwrite_bucket.bucket_id, b"x", name="x.txt",
                                      file_id="dup")
    appwrite_bucket.emulator.inject(path_regex=r"/injected$", status=503)
    cases = [
        (api("GET", f"{bucket}/files/missing"), 404, "storage_file_not_found"),
        (api("GET", "/storage/buckets/missing/files"), 404, "storage_bucket_not_found"),
        (api("POST", f"{bucket}/files", data={"fileId": "dup"}, files={"file": ("x", b"x")}),
         409, "storage_file_already_exists"),
        (api("POST", f"{bucket}/files", data={"fileId": "nofile"}), 400, "storage_file_empty"),
        (api("GET", f"{bucket}/files", params={"queries[0]": "{"}), 400,
         "general_query_invalid"),
        (api("GET", f"{bucket}/files/dup/download", headers={"Range": "bytes=3-9"}), 416,
         "storage_invalid_range"),
        (api("GET", f"{bucket}/files", headers={"X-Appwrite-Key": "wrong"}), 401,
         "user_unauthorized"),
        (api("GET", f"{bucket}/files", headers={"X-Appwrite-Project": "p"}), 404,
         "project_not_found"),
        (api("GET", "/storage/nowhere"), 404, "general_route_not_found"),
        (api("GET", f"{bucket}/injected"), 503, "general_service_disabled"),
    ]
    for response, status, error_type in cases:
        body = assert_conforms(response, "GET", FILE)
        assert (response.status_code, body["code"], body["type"]) == (status, status, error_type)
        assert response.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert (response.headers["Expires"], response.headers["Pragma"]) == ("0", "no-cache")


def test_every_spec_operation_is_routed(api, appwrite_bucket):
    for template, operations in SPEC["paths"].items():
        path = template.replace("{bucketId}", appwrite_bucket.bucket_id).replace(
            "{fileId}", "absent")
        for method in operations:
            response = api(method.upper(), path, json={} if method in ("put", "post") else None)
            assert "Content-Type" in response.headers
            if response.status_code >= 400:
                assert response.json()["type"] != "general_route_not_found", (method, template)


def test_bundled_spec_copy_matches_the_shared_spec():
    if not SHARED_SPEC.exists():
        pytest.skip("../shared is not checked out beside the repo")
    assert json.loads(BUNDLED_SPEC.read_text()) == json.loads(SHARED_SPEC.read_text())
