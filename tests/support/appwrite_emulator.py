"""An in-process Appwrite Storage server that the real `appwrite` SDK can talk to in tests.

Why an emulator and not mocks: the project's storage backend is a thin layer over the official
SDK, so the only honest test runs that SDK over real HTTP. This server follows the wire facts in
`shared/appwrite/FACTS.md` (Appwrite 1.9.6 / response format 2.5.0) and the official OpenAPI
schemas, which `tests/appwrite/test_emulator_conformance.py` checks it against.

Deliberate simplifications (each noted where it happens): one API key with every scope and no
user/guest callers (so permissions are stored but never enforced, exactly as for a real key),
no rate limiting, no real encryption, fulltext search approximated by word prefixes, and a
contended chunk lock waits instead of answering 429.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import itertools
import json
import math
import queue
import re
import secrets
import socket
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from PIL import Image, ImageDraw, ImageOps

# Version the real server reports in error bodies; FACTS §5 (Appwrite main @ 1.9.6).
SERVER_VERSION = "1.9.6"
# Appwrite's APP_LIMIT_UPLOAD_CHUNK_SIZE; the SDK uses the same 5 MiB (FACTS §2).
CHUNK_SIZE = 5 * 1024 * 1024
# Self-hosted `_APP_STORAGE_LIMIT` default: the default and ceiling of maximumFileSize (FACTS §9).
STORAGE_LIMIT = 30_000_000
# APP_LIMIT_ENCRYPTION / COMPRESSION and _APP_STORAGE_PREVIEW_LIMIT are all 20 MB (FACTS §9).
TRANSFORM_LIMIT = 20_000_000
# `total` is counted up to APP_LIMIT_COUNT (FACTS §4).
TOTAL_COUNT_CAP = 5000
# Default page size of every list endpoint (FACTS §4).
DEFAULT_LIST_LIMIT = 25
# Imagick's default 64 MiB memory limit at 4 bytes a pixel (FACTS §4, §9).
MAX_PREVIEW_SOURCE_PIXELS = 64 * 1024 * 1024 // 4
# Webhook worker timeout (FACTS §7) and consecutive failures before a webhook is disabled.
WEBHOOK_TIMEOUT_SECONDS = 15
WEBHOOK_MAX_FAILED_ATTEMPTS = 10

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
# Swoole's default type; the SDK needs a non-JSON type to return b'' on 204 (FACTS §1).
EMPTY_CONTENT_TYPE = "text/html; charset=UTF-8"
NO_CACHE_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Expires": "0",
    "Pragma": "no-cache",
}

# (HTTP status, default message) per error type: appwrite `app/config/errors.php` (FACTS §6).
ERRORS: dict[str, tuple[int, str]] = {
    "storage_bucket_not_found": (404, "Storage bucket with the requested ID could not be found."),
    "storage_bucket_already_exists": (
        409, ("A storage bucket with the requested ID already exists. Try again with a different "
        "ID or use ID.unique() to generate a unique ID.")),
    "storage_file_not_found": (404, "The requested file could not be found."),
    "storage_file_already_exists": (409, "A storage file with the requested ID already exists."),
    "storage_file_empty": (400, "Empty file passed to the endpoint."),
    "storage_file_type_unsupported": (400, "The given file extension is not supported."),
    "storage_invalid_file_size": (
        400, ("The file size is either not valid or exceeds the maximum allowed size. Please check "
        "the file or the value of the _APP_STORAGE_LIMIT environment variable.")),
    "storage_invalid_content_range": (
        400, "The content range is invalid. Please check the value of the Content-Range header."),
    "storage_invalid_appwrite_id": (
        400, ("The value for x-appwrite-id header is invalid. Please check the value of the "
        "x-appwrite-id header is a valid id and not unique().")),
    "storage_invalid_range": (
        416, "The requested range is not satisfiable. Please check the value of the Range header."),
    "storage_image_resolution_exceeded": (
        400, "The image resolution exceeds the maximum allowed for processing."),
    "storage_bucket_transformations_disabled": (
        403, "Image transformations are disabled for the requested bucket."),
    "general_argument_invalid": (400, "The request contains one or more invalid arguments."),
    "general_query_invalid": (400, "The query's syntax is invalid. Please check the query."),
    "general_cursor_not_found": (400, "The cursor is invalid. Please check the cursor value."),
    "user_unauthorized": (
        401, "The current user is not authorized to perform the requested action."),
    "project_not_found": (
        404, ("Project with the requested ID could not be found. Please check the value of the "
        "X-Appwrite-Project header to ensure the correct project ID is being used.")),
    "general_rate_limit_exceeded": (
        429, ("Rate limit for the current endpoint has been exceeded. Please try again after "
        "some time.")),
    "general_route_not_found": (
        404, ("Route not found. Please ensure the endpoint is configured correctly and that the "
        "API route is valid for this SDK version.")),
    "general_server_error": (500, "An internal server error occurred."),
    "general_service_disabled": (503, "The requested service is disabled."),
}
# Error type an injected fault uses when the test names none.
FAULT_ERROR_TYPES = {
    400: "general_argument_invalid", 401: "user_unauthorized", 404: "storage_file_not_found",
    409: "storage_file_already_exists", 416: "storage_invalid_range",
    429: "general_rate_limit_exceeded", 503: "general_service_disabled",
}

# [DB] Validator/Key.php: 1-36 chars of [A-Za-z0-9._-], not starting with a special char.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")
ID_RULE = ("Parameter must contain at most 36 chars. Valid chars are a-z, A-Z, 0-9, period, "
           "hyphen, and underscore. Can't start with a special char")
PERMISSION_PATTERN = re.compile(r'(read|create|update|delete|write)\("([^"]+)"\)')
CONTENT_RANGE_PATTERN = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
RANGE_PATTERN = re.compile(r"(\w+)=(\d*)-(\d*)")

FILE_QUERY_ATTRIBUTES = frozenset({
    "name", "folder", "signature", "mimeType", "sizeOriginal", "chunksTotal", "chunksUploaded",
    "$id", "$createdAt", "$updatedAt", "$sequence"})
BUCKET_QUERY_ATTRIBUTES = frozenset({
    "name", "enabled", "fileSecurity", "maximumFileSize", "encryption", "antivirus",
    "transformations", "compression", "$id", "$createdAt", "$updatedAt", "$sequence"})

# `app/config/storage/mimes.php`: /view keeps only these types, everything else is text/plain.
VIEW_ALLOWED_MIMES = frozenset({
    "image/jpeg", "image/gif", "image/png", "image/webp", "image/heic", "image/heic-sequence",
    "image/avif", "video/mp4", "video/x-flv", "video/webm", "application/x-mpegURL", "video/MP2T",
    "video/3gpp", "video/quicktime", "video/x-msvideo", "video/x-ms-wmv", "audio/basic",
    "audio/mid", "audio/mpeg", "audio/mp4", "audio/x-aiff", "audio/x-mpegurl", "audio/ogg",
    "audio/vorbis", "audio/vnd.wav", "audio/x-wav", "audio/wav", "audio/x-m4a",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/pdf",
})
# `inputs.php` / `outputs.php`: preview sources and output formats with their Content-Type.
PREVIEW_INPUT_MIMES = frozenset({"image/jpeg", "image/png", "image/heic", "image/webp",
                                 "image/gif"})
PREVIEW_OUTPUTS = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
                   "webp": "image/webp", "heic": "image/heic", "avif": "image/avif",
                   "gif": "image/gif"}
PILLOW_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF",
                  "gif": "GIF"}
GRAVITY_CENTERING = {
    "center": (0.5, 0.5), "auto": (0.5, 0.5), "top-left": (0.0, 0.0), "top": (0.5, 0.0),
    "top-right": (1.0, 0.0), "left": (0.0, 0.5), "right": (1.0, 0.5),
    "bottom-left": (0.0, 1.0), "bottom": (0.5, 1.0), "bottom-right": (1.0, 1.0)}
# Background of the generic file icons (FACTS §4).
ICON_BACKGROUND = "eceff1"


class ApiError(Exception):
    """An Appwrite error answer: `type` picks the status and default message from ERRORS."""

    def __init__(self, error_type: str, message: str | None = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None):
        default_status, default_message = ERRORS.get(error_type, (500, "Server Error"))
        self.type = error_type
        self.status = status or default_status
        self.message = message or default_message
        self.headers = headers or {}
        super().__init__(self.message)


def _invalid_param(name: str, rule: str) -> ApiError:
    return ApiError("general_argument_invalid", f"Invalid `{name}` param: {rule}")


def _missing_param(name: str) -> ApiError:
    return ApiError("general_argument_invalid", f'Param "{name}" is not optional.')


def php_json(payload: Any) -> bytes:
    """Encode like PHP `json_encode` with default flags: compact, `\\/`, ASCII only (FACTS §7)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    return text.replace("/", "\\/").encode("ascii")


def iso_now() -> str:
    """Appwrite datetime: ISO 8601 with milliseconds and `+00:00`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sniff_mime(data: bytes) -> str:
    """Guess a MIME type from content the way libmagic does for the formats tests use.

    The SDK never sends the part's Content-Type (FACTS §1), so the server must sniff.
    """
    if not data:
        return "application/x-empty"
    signatures = (
        (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"),
        (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"),
        (b"PK\x03\x04", "application/zip"), (b"\x1f\x8b", "application/gzip"),
    )
    for magic, mime in signatures:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "image/heic"
        return "image/avif" if brand in (b"avif", b"avis") else "video/mp4"
    return _sniff_text(data)


def _sniff_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    if any(ord(ch) < 32 and ch not in "\t\n\r\f\b\x1b" for ch in text):
        return "application/octet-stream"
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(text)
            return "application/json"
        except ValueError:
            pass
    lowered = stripped[:256].lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "text/html"
    if "<svg" in lowered and lowered.startswith(("<svg", "<?xml")):
        return "image/svg+xml"
    return "text/plain"


def validate_id(value: Any, param: str, *, allow_unique: bool = False) -> str:
    if not isinstance(value, str) or value == "":
        raise _missing_param(param) if value in (None, "") else _invalid_param(param, ID_RULE)
    if allow_unique and value == "unique()":
        return generate_id()
    if not ID_PATTERN.fullmatch(value):
        raise _invalid_param(param, ID_RULE)
    return value


def generate_id() -> str:
    """Like PHP `uniqid()` + 7 hex chars, which Appwrite uses for `unique()` (FACTS §1)."""
    now = time.time()
    return f"{int(now):08x}{int(now * 1_000_000) % 0x100000:05x}{secrets.token_hex(4)[:7]}"


def normalise_permissions(raw: Any, *, allowed: tuple[str, ...]) -> list[str]:
    """Validate permission strings and expand `write(x)` into `update(x)` + `delete(x)`."""
    if not isinstance(raw, list):
        raise _invalid_param("permissions", "Permissions must be an array of strings.")
    out: list[str] = []
    for item in raw:
        match = PERMISSION_PATTERN.fullmatch(item) if isinstance(item, str) else None
        if not match or match.group(1) not in allowed + ("write",):
            raise _invalid_param(
                "permissions", f"Permission \"{item}\" is not allowed. Must be one of: "
                + ", ".join(allowed) + ".")
        kind, role = match.groups()
        kinds = ("update", "delete") if kind == "write" else (kind,)
        for expanded in (f'{k}("{role}")' for k in kinds):
            if expanded not in out:
                out.append(expanded)
    return out


def normalise_folder(raw: Any) -> str:
    """Appwrite's Folder validator: relative, no empty/`.`/`..` segments, stored with a `/`."""
    if raw is None or raw == "":
        return ""
    rule = ("Value must be a valid folder path: at most 2048 chars, no leading slash, no empty, "
            "'.' or '..' segments and no control characters.")
    if not isinstance(raw, str) or len(raw) > 2048 or raw.startswith("/"):
        raise _invalid_param("folder", rule)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise _invalid_param("folder", rule)
    segments = raw[:-1].split("/") if raw.endswith("/") else raw.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise _invalid_param("folder", rule)
    return "/".join(segments) + "/"


def parse_bool(value: str, param: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise _invalid_param(param, "Value must be a valid boolean")


# --------------------------------------------------------------------------- stored state


@dataclass
class StoredBucket:
    """One bucket and its files (keyed by id, insertion order = upload order)."""

    id: str
    name: str
    sequence: int
    permissions: list[str] = field(default_factory=list)
    file_security: bool = False
    enabled: bool = True
    maximum_file_size: int = STORAGE_LIMIT
    allowed_extensions: list[str] = field(default_factory=list)
    compression: str = "none"
    encryption: bool = True
    antivirus: bool = True
    transformations: bool = True
    created_at: str = field(default_factory=iso_now)
    updated_at: str = ""
    files: dict[str, StoredFile] = field(default_factory=dict)

    def model(self) -> dict[str, Any]:
        return {
            "$id": self.id, "$createdAt": self.created_at,
            "$updatedAt": self.updated_at or self.created_at,
            "$permissions": list(self.permissions), "fileSecurity": self.file_security,
            "name": self.name, "enabled": self.enabled, "maximumFileSize": self.maximum_file_size,
            "allowedFileExtensions": list(self.allowed_extensions),
            "compression": self.compression, "encryption": self.encryption,
            "antivirus": self.antivirus, "transformations": self.transformations,
            "totalSize": sum(f.size_actual for f in self.files.values()),
        }


@dataclass
class StoredFile:
    """A file document; `parts` holds chunks by index until every one has arrived."""

    id: str
    bucket_id: str
    sequence: int
    name: str
    folder: str
    permissions: list[str]
    size_original: int
    chunks_total: int
    created_at: str = field(default_factory=iso_now)
    updated_at: str = ""
    parts: dict[int, bytes] = field(default_factory=dict)
    data: bytes | None = None
    signature: str = ""
    mime_type: str = ""
    size_actual: int = 0
    encryption: bool = False
    compression: str = ""

    @property
    def complete(self) -> bool:
        return self.data is not None

    def model(self) -> dict[str, Any]:
        """The File model in Appwrite's field order (FACTS §5)."""
        return {
            "$id": self.id, "bucketId": self.bucket_id, "$createdAt": self.created_at,
            "$updatedAt": self.updated_at or self.created_at,
            "$permissions": list(self.permissions), "name": self.name, "folder": self.folder,
            "key": self.folder + self.name, "signature": self.signature,
            "mimeType": self.mime_type, "sizeOriginal": self.size_original,
            "sizeActual": self.size_actual, "chunksTotal": self.chunks_total,
            "chunksUploaded": len(self.parts) if self.data is None else self.chunks_total,
            "encryption": self.encryption, "compression": self.compression,
        }

    def finish(self, data: bytes, bucket: StoredBucket) -> None:
        """Assemble: md5 and MIME of the plaintext, then the bucket's storage transforms."""
        self.data = data
        self.parts = {}
        self.signature = hashlib.md5(data).hexdigest()
        self.mime_type = sniff_mime(data)
        transformable = len(data) <= TRANSFORM_LIMIT
        self.compression = bucket.compression if transformable else "none"
        # gzip is measured for real; zstd is not in the 3.11 stdlib, so it reports the raw size.
        self.size_actual = (len(gzip.compress(data)) if self.compression == "gzip"
                            else len(data))
        self.encryption = bucket.encryption and transformable


# --------------------------------------------------------------------------- test helpers


class LoggedRequest(NamedTuple):
    """One request as the emulator saw it: path includes `/v1`, query is the last value per key."""

    method: str
    path: str
    query: dict[str, str]


@dataclass
class Fault:
    """A scripted misbehaviour for requests whose method and path match (see `inject`)."""

    method: str | None
    path_regex: re.Pattern[str]
    status: int | None
    times: int | None
    delay: float
    drop: bool
    retry_after: int
    error_type: str | None
    message: str | None
    json_body: bool
    body: bytes | None = None
    content_type: str | None = None
    omit_content_type: bool = False
    truncate: int | None = None
    hold: threading.Event | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (self.method is None or self.method == method) and bool(
            self.path_regex.search(path))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass
class Webhook:
    id: str
    url: str
    events: list[str]
    secret: str
    name: str = "webhook"
    auth_username: str = ""
    auth_password: str = ""
    enabled: bool = True
    attempts: int = 0


@dataclass
class WebhookDelivery:
    """What one delivery sent and how the receiver answered (`status` None on connect errors)."""

    webhook_id: str
    url: str
    events: list[str]
    headers: dict[str, str]
    body: bytes
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400


def file_events(bucket_id: str, file_id: str, action: str) -> list[str]:
    """The event list `Event::generateEvents` emits for a file action, in its order (FACTS §7)."""
    b, f = bucket_id, file_id
    return [f"buckets.{b}.files.{f}.{action}", f"buckets.*.files.*.{action}",
            f"buckets.{b}.files.*.{action}", f"buckets.*.files.{f}.{action}",
            f"buckets.{b}.files.{f}", "buckets.*.files.*", f"buckets.{b}.files.*",
            f"buckets.*.files.{f}", f"buckets.{b}", "buckets.*"]


def webhook_signature(secret: str, url: str, body: bytes) -> str:
    """base64(HMAC-SHA1(secret, url + raw body)), exactly as Appwrite signs (FACTS §7)."""
    digest = hmac.new(secret.encode(), url.encode() + body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# --------------------------------------------------------------------------- queries


@dataclass
class _QueryPlan:
    filters: list[Callable[[dict[str, Any]], bool]] = field(default_factory=list)
    orders: list[tuple[str, bool]] = field(default_factory=list)
    limit: int = DEFAULT_LIST_LIMIT
    offset: int = 0
    cursor: tuple[str, str] | None = None  # ("after" | "before", document id)


def _coerce(sample: Any, value: Any) -> Any:
    if isinstance(sample, bool) or not isinstance(sample, (int, float)):
        return value
    try:
        return type(sample)(value)
    except (TypeError, ValueError):
        return value


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^0-9A-Za-z]+", text.lower()) if w]


def fulltext_match(haystack: str, needle: str) -> bool:
    """Approximates MariaDB boolean fulltext: any search word is a prefix of a document word."""
    words = _words(haystack)
    return any(any(w.startswith(term) for w in words) for term in _words(needle))


_COMPARATORS: dict[str, Callable[[Any, list[Any]], bool]] = {
    "equal": lambda v, vals: v in vals,
    "notEqual": lambda v, vals: v not in vals,
    "lessThan": lambda v, vals: v is not None and v < vals[0],
    "lessThanEqual": lambda v, vals: v is not None and v <= vals[0],
    "greaterThan": lambda v, vals: v is not None and v > vals[0],
    "greaterThanEqual": lambda v, vals: v is not None and v >= vals[0],
    "between": lambda v, vals: v is not None and vals[0] <= v <= vals[1],
    "startsWith": lambda v, vals: isinstance(v, str) and v.startswith(str(vals[0])),
    "endsWith": lambda v, vals: isinstance(v, str) and v.endswith(str(vals[0])),
    "contains": lambda v, vals: isinstance(v, str) and any(str(x) in v for x in vals),
    "search": lambda v, vals: isinstance(v, str) and fulltext_match(v, str(vals[0])),
    "isNull": lambda v, vals: v is None,
    "isNotNull": lambda v, vals: v is not None,
}
_MIN_VALUES = {"lessThan": 1, "lessThanEqual": 1, "greaterThan": 1, "greaterThanEqual": 1,
               "between": 2, "startsWith": 1, "endsWith": 1, "contains": 1, "search": 1,
               "equal": 1, "notEqual": 1}


def parse_queries(raw: list[str], attributes: frozenset[str]) -> _QueryPlan:
    """Turn the SDK's JSON query strings into a plan; anything unsupported is a 400."""
    if len(raw) > 100:
        raise _invalid_param("queries", "Value must be an array of no more than 100 items")
    plan = _QueryPlan()
    for text in raw:
        try:
            query = json.loads(text)
            method = query["method"]
        except (ValueError, TypeError, KeyError) as exc:
            raise ApiError("general_query_invalid", f"Invalid query: {text}") from exc
        values = query.get("values") or []
        attribute = query.get("attribute", "")
        _apply_query(plan, method, attribute, values, attributes)
    return plan


def _apply_query(plan: _QueryPlan, method: str, attribute: str, values: list[Any],
                 attributes: frozenset[str]) -> None:
    if method in ("limit", "offset"):
        value = values[0] if values else None
        low = 1 if method == "limit" else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ApiError("general_query_invalid",
                           f"Invalid query: Invalid {method}: Value must be a valid range "
                           f"between {low:,} and 9,223,372,036,854,775,807")
        setattr(plan, method, value)
    elif method in ("cursorAfter", "cursorBefore"):
        if not values or not isinstance(values[0], str):
            raise ApiError("general_query_invalid", "Invalid query: Cursor must be a string")
        plan.cursor = ("after" if method == "cursorAfter" else "before", values[0])
    elif method in ("orderAsc", "orderDesc"):
        _check_attribute(attribute, attributes)
        plan.orders.append((attribute, method == "orderDesc"))
    elif method in _COMPARATORS:
        _check_attribute(attribute, attributes)
        if len(values) < _MIN_VALUES.get(method, 0):
            raise ApiError("general_query_invalid",
                           f"Invalid query: {method} queries require at least one value.")
        compare = _COMPARATORS[method]
        plan.filters.append(lambda doc, a=attribute, vs=values, c=compare: c(
            doc.get(a), [_coerce(doc.get(a), x) for x in vs]))
    else:
        raise ApiError("general_query_invalid", f"Invalid query method: {method}")


def _check_attribute(attribute: str, attributes: frozenset[str]) -> None:
    if attribute not in attributes:
        raise ApiError("general_query_invalid",
                       f"Invalid query: Attribute not found in schema: {attribute}")


def run_query(docs: list[dict[str, Any]], plan: _QueryPlan, search: str,
              search_text: Callable[[dict[str, Any]], str]) -> tuple[list[dict[str, Any]], int]:
    """Filter, order, page; docs carry `$sequence`. Returns (page, uncapped match count)."""
    matches = [d for d in docs if all(f(d) for f in plan.filters)
               and (not search or fulltext_match(search_text(d), search))]
    total = len(matches)
    if plan.cursor:
        direction, cursor_id = plan.cursor
        cursor = next((d for d in docs if d["$id"] == cursor_id), None)
        if cursor is None:
            raise ApiError("general_cursor_not_found",
                           f"Document '{cursor_id}' for the 'cursor' value not found.")
        if cursor not in matches:
            matches.append(cursor)
    ordered = _sort(matches, plan.orders)
    if plan.cursor:
        index = ordered.index(cursor)
        if direction == "before":
            before = ordered[:index][::-1]
            return before[plan.offset:plan.offset + plan.limit][::-1], total
        ordered = ordered[index + 1:]
    return ordered[plan.offset:plan.offset + plan.limit], total


def _sort(docs: list[dict[str, Any]], orders: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    # $sequence ASC is the default order and the final tie-breaker (FACTS §4); stable sorts
    # applied last-key-first give a total order, which keeps cursor paging consistent.
    ordered = sorted(docs, key=lambda d: d["$sequence"])
    for attribute, descending in reversed(orders):
        ordered.sort(key=lambda d: (d.get(attribute) is not None, d.get(attribute)),
                     reverse=descending)
    return ordered


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Any  # email.message.Message: case-insensitive .get()
    body: bytes

    def query_value(self, name: str) -> str | None:
        found = [v for k, v in self.query if k == name]
        return found[-1] if found else None

    def query_list(self, name: str) -> list[str]:
        indexed = []
        for key, value in self.query:
            match = re.fullmatch(re.escape(name) + r"\[(\d*)\]", key)
            if match:
                indexed.append((int(match.group(1) or len(indexed)), value))
        return [v for _, v in sorted(indexed, key=lambda kv: kv[0])]

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise ApiError("general_argument_invalid", "Invalid JSON body.") from exc
        if not isinstance(data, dict):
            raise ApiError("general_argument_invalid", "Invalid JSON body.")
        return data


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = JSON_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any) -> Response:
    return Response(status, php_json(payload))


def error_response(error: ApiError) -> Response:
    body = {"message": error.message, "code": error.status, "type": error.type,
            "version": SERVER_VERSION}
    return Response(error.status, php_json(body), headers={**NO_CACHE_HEADERS, **error.headers})


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Split a multipart body into text fields and file parts `{name: (filename, bytes)}`."""
    if content_type.startswith("application/x-www-form-urlencoded"):  # PHP parses these too.
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), {}
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ApiError("general_argument_invalid", "Missing multipart boundary.")
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, str] = {}
    files: dict[str, Any] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        disposition = next((line for line in head.decode("utf-8", "replace").split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if not name:
            continue
        if filename:
            files[name.group(1)] = (filename.group(1).replace("%22", '"'), content)
        else:
            fields[name.group(1)] = content.decode("utf-8")
    return fields, files


def indexed_fields(fields: dict[str, str], name: str) -> list[str] | None:
    """Collect `name[0]`, `name[1]`, … multipart fields; None when there are none."""
    found = []
    for key, value in fields.items():
        match = re.fullmatch(re.escape(name) + r"\[(\d*)\]", key)
        if match:
            found.append((int(match.group(1) or len(found)), value))
    return [v for _, v in sorted(found)] if found else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately; with Nagle on, a keep-alive client's delayed ACK
    # stalls every response by ~40 ms on loopback, which Appwrite's real server does not do.
    disable_nagle_algorithm = True
    server_version = "AppwriteEmulator"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests_log` instead of stderr."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _serve(self) -> None:
        emulator: AppwriteEmulator = self.server.emulator  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        # The SDK's resume probe is a GET with a multipart body (FACTS §2); always drain it.
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Request(self.command, unquote(split.path),
                          parse_qsl(split.query, keep_blank_values=True), self.headers, body)
        emulator._record(request)
        fault = emulator._take_fault(request.method, request.path)
        if fault is not None:
            if fault.hold is not None:
                while not (fault.hold.is_set() or emulator._stopping.is_set()):
                    fault.hold.wait(0.05)
            if fault.delay:
                emulator._stopping.wait(fault.delay)
            if fault.drop:
                self.close_connection = True
                return
        if fault is not None and fault.status is not None:
            response = emulator._fault_response(fault)
        else:
            try:
                response = emulator._handle(request)
            except Exception:  # noqa: BLE001 - a bug in the emulator: answer like Appwrite does, and show it.
                traceback.print_exc()
                response = error_response(ApiError("general_server_error"))
        if fault is not None and fault.omit_content_type:
            response.content_type = None
        self._send(response, truncate=fault.truncate if fault is not None else None)

    def _send(self, response: Response, *, truncate: int | None = None) -> None:
        """Write the answer; ``truncate`` sends only that many body bytes, then hangs up."""
        try:
            self.send_response(response.status)
            if response.content_type is not None:
                self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body if truncate is None else response.body[:truncate])
            if truncate is not None:
                self.wfile.flush()
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # The client gave up (e.g. its timeout fired).


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are expected under fault injection; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- the emulator


class AppwriteEmulator:
    """Appwrite Storage over HTTP on 127.0.0.1 with an OS-chosen port, state in memory.

    Use as a context manager or call `start()`/`stop()`. Point the SDK at `.endpoint` with
    `.project_id` and `.api_key`. Test hooks: `create_bucket`, `add_file`, `files`,
    `file_bytes`, `requests_log`, `inject`, `add_webhook`, `wait_for_deliveries`, `reset`.
    """

    def __init__(self, project_id: str = "test-project", api_key: str | None = None):
        self.project_id = project_id
        self.api_key = api_key or "standard_" + secrets.token_hex(32)
        self._lock = threading.RLock()
        self._file_locks: dict[tuple[str, str], threading.Lock] = {}
        self._sequence = itertools.count(1)
        self._buckets: dict[str, StoredBucket] = {}
        self._faults: list[Fault] = []
        self._webhooks: list[Webhook] = []
        self._deliveries: list[WebhookDelivery] = []
        self._delivery_queue: queue.Queue[tuple[Webhook, list[str], dict[str, Any]] | None] = (
            queue.Queue())
        self._stopping = threading.Event()
        self.requests_log: list[LoggedRequest] = []
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.emulator = self  # type: ignore[attr-defined]
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                             name="appwrite-emulator", daemon=True),
            threading.Thread(target=self._deliver_forever, name="appwrite-webhooks",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # Wakes delayed (fault-injected) handlers.
        self._server.shutdown()
        self._server.server_close()
        self._delivery_queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("AppwriteEmulator is not running; call start() first.")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        """Forget buckets, files, faults, webhooks, deliveries and the request log."""
        self._drain_delivery_queue()
        with self._lock:
            self._buckets.clear()
            self._file_locks.clear()
            self._faults.clear()
            self._webhooks.clear()
            self._deliveries.clear()
            self.requests_log.clear()

    # ---- test-side state helpers

    def create_bucket(self, bucket_id: str, *, name: str | None = None,
                      maximum_file_size: int = STORAGE_LIMIT,
                      allowed_extensions: tuple[str, ...] | list[str] = (),
                      transformations: bool = True, file_security: bool = False,
                      permissions: tuple[str, ...] | list[str] = (), enabled: bool = True,
                      encryption: bool = True, compression: str = "none") -> dict[str, Any]:
        """Create a bucket directly (no HTTP) and return its Bucket model."""
        with self._lock:
            if bucket_id in self._buckets:
                raise ValueError(f"Bucket {bucket_id!r} already exists.")
            bucket = StoredBucket(
                id=validate_id(bucket_id, "bucketId"), name=name or bucket_id,
                sequence=next(self._sequence),
                permissions=normalise_permissions(list(permissions), allowed=(
                    "read", "create", "update", "delete")),
                file_security=file_security, enabled=enabled,
                maximum_file_size=maximum_file_size, allowed_extensions=list(allowed_extensions),
                compression=compression, encryption=encryption, transformations=transformations)
            self._buckets[bucket_id] = bucket
            return bucket.model()

    def add_file(self, bucket_id: str, data: bytes, *, name: str, file_id: str | None = None,
                 folder: str = "", permissions: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
        """Seed a complete file without HTTP, events or bucket checks; returns its File model."""
        with self._lock:
            bucket = self._buckets[bucket_id]
            stored = StoredFile(
                id=file_id or generate_id(), bucket_id=bucket_id, sequence=next(self._sequence),
                name=name, folder=normalise_folder(folder),
                permissions=normalise_permissions(list(permissions), allowed=(
                    "read", "update", "delete")),
                size_original=len(data), chunks_total=max(1, math.ceil(len(data) / CHUNK_SIZE)))
            stored.finish(data, bucket)
            bucket.files[stored.id] = stored
            return stored.model()

    def files(self, bucket_id: str) -> list[dict[str, Any]]:
        """File models of a bucket in upload order, pending chunked uploads included."""
        with self._lock:
            return [f.model() for f in self._buckets[bucket_id].files.values()]

    def file_bytes(self, bucket_id: str, file_id: str) -> bytes | None:
        """Stored bytes of a complete file, None while a chunked upload is pending."""
        with self._lock:
            return self._buckets[bucket_id].files[file_id].data

    def requests_to(self, path_regex: str, method: str | None = None) -> list[LoggedRequest]:
        """Logged requests whose path matches `path_regex` (re.search) and method, if given."""
        pattern = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests_log
                    if pattern.search(r.path) and (method is None or r.method == method)]

    # ---- fault injection

    def inject(self, method: str | None = None, path_regex: str = "", *,
               status: int | None = None, times: int | None = 1, delay: float = 0.0,
               drop: bool = False, retry_after: int = 5, error_type: str | None = None,
               message: str | None = None, json_body: bool = True, body: bytes | None = None,
               content_type: str | None = None, omit_content_type: bool = False,
               truncate: int | None = None, hold: threading.Event | None = None) -> Fault:
        """Make the next `times` matching requests misbehave (None = every one, until reset).

        Matching: `method` (None = any) and `re.search(path_regex, path)`, where path is the URL
        path with `/v1`, e.g. `/v1/storage/buckets/b/files/f/download`. Faults are tried in the
        order they were added; the first live match is used and counts down. Effects, in order:
        wait until the `hold` event is set (a request parked until the test releases it); wait
        `delay` seconds; then `drop=True` closes the connection with no answer; or `status`
        answers with an Appwrite error body (type from `error_type`, else a sensible one for the
        status; 429 adds `Retry-After: retry_after`; `json_body=False` sends an HTML page like a
        proxy would), or with `body` labelled `content_type` when given (e.g. a 200 labelled
        JSON whose body is not JSON). Without `status` the request is then served normally.
        Either answer can be damaged: `omit_content_type=True` sends no Content-Type header
        (what some proxies do on a 502), `truncate=N` declares the full Content-Length but sends
        only N body bytes and closes the connection.
        """
        if status is None and not (drop or delay or hold or omit_content_type
                                   or truncate is not None):
            raise ValueError("A fault needs status=, drop=True, delay=, hold=, "
                             "omit_content_type=True or truncate=.")
        if body is not None and status is None:
            raise ValueError("A fault with a body= needs the status= to answer it with.")
        fault = Fault(method.upper() if method else None, re.compile(path_regex), status, times,
                      delay, drop, retry_after, error_type, message, json_body, body,
                      content_type, omit_content_type, truncate, hold)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        headers = {"Retry-After": str(fault.retry_after)} if status == 429 else {}
        if fault.body is not None:
            return Response(status, fault.body, fault.content_type or EMPTY_CONTENT_TYPE, headers)
        if not fault.json_body:
            page = f"<html><body><h1>{status} Injected fault</h1></body></html>".encode()
            return Response(status, page, EMPTY_CONTENT_TYPE, headers)
        error_type = fault.error_type or FAULT_ERROR_TYPES.get(status, "general_server_error")
        default_message = ERRORS.get(error_type, (status, f"Injected HTTP {status} fault."))[1]
        return error_response(ApiError(error_type, fault.message or default_message,
                                       status=status, headers=headers))

    # ---- webhooks

    def add_webhook(self, url: str, events: list[str], *, secret: str | None = None,
                    name: str = "webhook", auth_username: str = "",
                    auth_password: str = "") -> Webhook:
        """Register a webhook; deliveries run on a background thread, in event order."""
        hook = Webhook(id=generate_id(), url=url, events=list(events),
                       secret=secret or secrets.token_hex(64), name=name,
                       auth_username=auth_username, auth_password=auth_password)
        with self._lock:
            self._webhooks.append(hook)
        return hook

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Block until every queued delivery has been attempted; returns all deliveries."""
        deadline = time.monotonic() + timeout
        while self._delivery_queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("Webhook deliveries still pending.")
            time.sleep(0.01)
        return self.deliveries

    def _fire(self, bucket_id: str, file_id: str, action: str, payload: dict[str, Any]) -> None:
        events = file_events(bucket_id, file_id, action)
        with self._lock:
            hooks = [h for h in self._webhooks if h.enabled and set(h.events) & set(events)]
        for hook in hooks:
            self._delivery_queue.put((hook, events, payload))

    def _deliver_forever(self) -> None:
        while True:
            item = self._delivery_queue.get()
            try:
                if item is None:
                    return
                delivery = self._deliver(*item)
                with self._lock:
                    self._deliveries.append(delivery)
            finally:
                self._delivery_queue.task_done()

    def _drain_delivery_queue(self) -> None:
        while True:
            try:
                item = self._delivery_queue.get_nowait()
            except queue.Empty:
                return
            if item is None:  # Keep a pending stop signal for the worker.
                self._delivery_queue.task_done()
                self._delivery_queue.put(None)
                return
            self._delivery_queue.task_done()

    def _deliver(self, hook: Webhook, events: list[str], payload: dict[str, Any]) -> (
            WebhookDelivery):
        body = php_json(payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Appwrite-Server v{SERVER_VERSION}. Please report abuse at "
                          "security@appwrite.io",
            "X-Appwrite-Webhook-Id": hook.id,
            "X-Appwrite-Webhook-Name": hook.name,
            "X-Appwrite-Webhook-Project-Id": self.project_id,
            "X-Appwrite-Webhook-Events": ",".join(events),
            "X-Appwrite-Webhook-User-Id": "",  # Empty: an API key triggered the event.
            "X-Appwrite-Webhook-Signature": webhook_signature(hook.secret, hook.url, body),
        }
        if hook.auth_username:
            token = f"{hook.auth_username}:{hook.auth_password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        status, error = None, None
        try:
            request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status, error = exc.code, str(exc)
        except (OSError, ValueError) as exc:
            error = str(exc)
        # The worker never retries; consecutive failures disable the webhook (FACTS §7).
        with self._lock:
            failed = status is None or status >= 400
            hook.attempts = hook.attempts + 1 if failed else 0
            hook.enabled = hook.attempts < WEBHOOK_MAX_FAILED_ATTEMPTS
        return WebhookDelivery(hook.id, hook.url, events, headers, body, status, error)

    # ---- request handling

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests_log.append(LoggedRequest(request.method, request.path,
                                                   dict(request.query)))

    def _handle(self, request: Request) -> Response:
        try:
            handler, params = self._route(request)
            self._authenticate(request)
            return handler(request, *params)
        except ApiError as error:
            return error_response(error)

    def _route(self, request: Request) -> tuple[Callable[..., Response], tuple[str, ...]]:
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", r"/v1/storage/buckets", self._list_buckets),
            ("POST", r"/v1/storage/buckets", self._create_bucket_http),
            ("GET", r"/v1/storage/buckets/([^/]+)", self._get_bucket),
            ("PUT", r"/v1/storage/buckets/([^/]+)", self._update_bucket),
            ("DELETE", r"/v1/storage/buckets/([^/]+)", self._delete_bucket),
            ("GET", r"/v1/storage/buckets/([^/]+)/files", self._list_files),
            ("POST", r"/v1/storage/buckets/([^/]+)/files", self._create_file),
            ("GET", r"/v1/storage/buckets/([^/]+)/files/([^/]+)", self._get_file),
            ("PUT", r"/v1/storage/buckets/([^/]+)/files/([^/]+)", self._update_file),
            ("DELETE", r"/v1/storage/buckets/([^/]+)/files/([^/]+)", self._delete_file),
            ("GET", r"/v1/storage/buckets/([^/]+)/files/([^/]+)/download", self._download),
            ("GET", r"/v1/storage/buckets/([^/]+)/files/([^/]+)/view", self._view),
            ("GET", r"/v1/storage/buckets/([^/]+)/files/([^/]+)/preview", self._preview),
        ]
        path = request.path.rstrip("/")
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return handler, match.groups()
        raise ApiError("general_route_not_found")

    def _authenticate(self, request: Request) -> None:
        if request.headers.get("X-Appwrite-Project") != self.project_id:
            raise ApiError("project_not_found")
        if not hmac.compare_digest(request.headers.get("X-Appwrite-Key") or "", self.api_key):
            raise ApiError("user_unauthorized")

    def _bucket(self, bucket_id: str) -> StoredBucket:
        validate_id(bucket_id, "bucketId")
        with self._lock:
            bucket = self._buckets.get(bucket_id)
        if bucket is None:
            raise ApiError("storage_bucket_not_found")
        return bucket

    def _file(self, bucket_id: str, file_id: str) -> tuple[StoredBucket, StoredFile]:
        bucket = self._bucket(bucket_id)  # The bucket is checked first (FACTS §4).
        validate_id(file_id, "fileId")
        with self._lock:
            stored = bucket.files.get(file_id)
        if stored is None:
            raise ApiError("storage_file_not_found")
        return bucket, stored

    def _complete_file(self, bucket_id: str, file_id: str) -> tuple[StoredBucket, StoredFile]:
        bucket, stored = self._file(bucket_id, file_id)
        if not stored.complete:
            raise ApiError("storage_file_not_found")
        return bucket, stored

    # ---- buckets

    def _list_buckets(self, request: Request) -> Response:
        plan = parse_queries(request.query_list("queries"), BUCKET_QUERY_ATTRIBUTES)
        with self._lock:
            docs = [{**b.model(), "$sequence": b.sequence} for b in self._buckets.values()]
        page, total = run_query(docs, plan, request.query_value("search") or "",
                                lambda d: f"{d['$id']} {d['name']}")
        total = self._total(request, total)
        return json_response(200, {"total": total, "buckets": [_public(d) for d in page]})

    def _create_bucket_http(self, request: Request) -> Response:
        data = request.json()
        if "bucketId" not in data:
            raise _missing_param("bucketId")
        if not isinstance(data.get("name"), str):
            raise _missing_param("name")
        bucket_id = validate_id(data["bucketId"], "bucketId", allow_unique=True)
        with self._lock:
            if bucket_id in self._buckets:
                raise ApiError("storage_bucket_already_exists")
            self.create_bucket(bucket_id, **self._bucket_settings(data))
            return json_response(201, self._buckets[bucket_id].model())

    def _bucket_settings(self, data: dict[str, Any]) -> dict[str, Any]:
        size = data.get("maximumFileSize", STORAGE_LIMIT)
        if not isinstance(size, int) or not 1 <= size <= STORAGE_LIMIT:
            raise _invalid_param("maximumFileSize",
                                 f"Value must be a valid range between 1 and {STORAGE_LIMIT:,}")
        compression = data.get("compression", "none")
        if compression not in ("none", "gzip", "zstd"):
            raise _invalid_param("compression", "Value must be one of (none, gzip, zstd)")
        return {"name": data["name"], "maximum_file_size": size,
                "allowed_extensions": list(data.get("allowedFileExtensions") or []),
                "transformations": bool(data.get("transformations", True)),
                "file_security": bool(data.get("fileSecurity", False)),
                "permissions": list(data.get("permissions") or []),
                "enabled": bool(data.get("enabled", True)),
                "encryption": bool(data.get("encryption", True)), "compression": compression}

    def _get_bucket(self, request: Request, bucket_id: str) -> Response:
        return json_response(200, self._bucket(bucket_id).model())

    def _update_bucket(self, request: Request, bucket_id: str) -> Response:
        bucket = self._bucket(bucket_id)
        data = request.json()
        if not isinstance(data.get("name"), str):
            raise _missing_param("name")
        settings = self._bucket_settings(data)
        with self._lock:
            bucket.name = settings["name"]
            bucket.maximum_file_size = settings["maximum_file_size"]
            bucket.allowed_extensions = settings["allowed_extensions"]
            bucket.transformations = settings["transformations"]
            bucket.file_security = settings["file_security"]
            bucket.enabled = settings["enabled"]
            bucket.encryption = settings["encryption"]
            bucket.compression = settings["compression"]
            if data.get("permissions") is not None:
                bucket.permissions = normalise_permissions(
                    data["permissions"], allowed=("read", "create", "update", "delete"))
            bucket.updated_at = iso_now()
            return json_response(200, bucket.model())

    def _delete_bucket(self, request: Request, bucket_id: str) -> Response:
        self._bucket(bucket_id)
        with self._lock:
            self._buckets.pop(bucket_id, None)
        return Response(204, b"", EMPTY_CONTENT_TYPE)

    # ---- files: list, get, update, delete

    def _list_files(self, request: Request, bucket_id: str) -> Response:
        bucket = self._bucket(bucket_id)
        plan = parse_queries(request.query_list("queries"), FILE_QUERY_ATTRIBUTES)
        search = request.query_value("search") or ""
        if len(search) > 256:
            raise _invalid_param("search", "Value must be a valid string and at most 256 chars")
        with self._lock:
            docs = [{**f.model(), "$sequence": f.sequence} for f in bucket.files.values()]
        page, total = run_query(docs, plan, search, lambda d: f"{d['$id']} {d['name']}")
        total = self._total(request, total)
        return json_response(200, {"total": total, "files": [_public(d) for d in page]})

    @staticmethod
    def _total(request: Request, total: int) -> int:
        raw = request.query_value("total")
        wanted = True if raw is None else parse_bool(raw, "total")
        return min(total, TOTAL_COUNT_CAP) if wanted else 0

    def _get_file(self, request: Request, bucket_id: str, file_id: str) -> Response:
        _, stored = self._file(bucket_id, file_id)
        with self._lock:
            return json_response(200, stored.model())

    def _update_file(self, request: Request, bucket_id: str, file_id: str) -> Response:
        _, stored = self._file(bucket_id, file_id)
        data = request.json()
        name, permissions = data.get("name"), data.get("permissions")
        if name is not None and (not isinstance(name, str) or len(name) > 128):
            raise _invalid_param("name", "Value must be a valid string and at most 128 chars")
        if permissions is not None:
            permissions = normalise_permissions(permissions, allowed=("read", "update", "delete"))
        with self._lock:
            if name is not None:
                stored.name = name
            if permissions is not None:
                stored.permissions = permissions
            stored.updated_at = iso_now()
            model = stored.model()
        self._fire(bucket_id, file_id, "update", model)
        return json_response(200, model)

    def _delete_file(self, request: Request, bucket_id: str, file_id: str) -> Response:
        bucket, stored = self._file(bucket_id, file_id)
        with self._lock:
            model = stored.model()
            bucket.files.pop(file_id, None)
        self._fire(bucket_id, file_id, "delete", model)
        return Response(204, b"", EMPTY_CONTENT_TYPE)

    # ---- files: create (single-shot and chunked)

    def _create_file(self, request: Request, bucket_id: str) -> Response:
        fields, parts = parse_multipart(request.body,
                                        request.headers.get("Content-Type") or "")
        if "fileId" not in fields:
            raise _missing_param("fileId")
        file_id = validate_id(fields["fileId"], "fileId", allow_unique=True)
        raw_permissions = indexed_fields(fields, "permissions")
        permissions = normalise_permissions(raw_permissions or [],
                                            allowed=("read", "update", "delete"))
        folder = normalise_folder(fields.get("folder"))
        bucket = self._bucket(bucket_id)
        if "file" not in parts:
            raise ApiError("storage_file_empty")
        filename, data = parts["file"]
        content_range = request.headers.get("Content-Range")
        size = len(data)
        if content_range:
            start, _end, size = self._parse_content_range(content_range)
            file_id = self._upload_id(request, file_id)
        self._check_upload(bucket, filename, size)
        if not content_range:
            return self._store_whole(bucket, file_id, filename, folder, permissions, data)
        return self._store_chunk(bucket, file_id, filename, folder, permissions, data,
                                 start // CHUNK_SIZE, size)

    @staticmethod
    def _parse_content_range(header: str) -> tuple[int, int, int]:
        match = CONTENT_RANGE_PATTERN.fullmatch(header.strip())
        if not match:
            raise ApiError("storage_invalid_content_range")
        start, end, size = (int(g) for g in match.groups())
        if end > size or start > end:
            raise ApiError("storage_invalid_content_range")
        return start, end, size

    @staticmethod
    def _upload_id(request: Request, file_id: str) -> str:
        header = request.headers.get("X-Appwrite-Id")
        if header is None or header == "":
            return file_id
        if header == "unique()" or not ID_PATTERN.fullmatch(header):
            raise ApiError("storage_invalid_appwrite_id")
        return header

    @staticmethod
    def _check_upload(bucket: StoredBucket, filename: str, size: int) -> None:
        """Extension (case-sensitive, PHP pathinfo) and size checks, run on every chunk."""
        if bucket.allowed_extensions:
            base = filename.rsplit("/", 1)[-1]
            extension = base.rsplit(".", 1)[1] if "." in base else ""
            if extension not in bucket.allowed_extensions:
                raise ApiError("storage_file_type_unsupported", "File extension not allowed")
        if size > bucket.maximum_file_size:
            raise ApiError("storage_invalid_file_size", "File size not allowed")

    def _file_lock(self, bucket_id: str, file_id: str) -> threading.Lock:
        with self._lock:
            return self._file_locks.setdefault((bucket_id, file_id), threading.Lock())

    def _store_whole(self, bucket: StoredBucket, file_id: str, filename: str, folder: str,
                     permissions: list[str], data: bytes) -> Response:
        with self._lock:
            if file_id in bucket.files:
                raise ApiError("storage_file_already_exists")
            stored = StoredFile(id=file_id, bucket_id=bucket.id, sequence=next(self._sequence),
                                name=filename, folder=folder, permissions=permissions,
                                size_original=len(data), chunks_total=1)
            stored.finish(data, bucket)
            bucket.files[file_id] = stored
            model = stored.model()
        self._fire(bucket.id, file_id, "create", model)
        return json_response(201, model)

    def _store_chunk(self, bucket: StoredBucket, file_id: str, filename: str, folder: str,
                     permissions: list[str], data: bytes, index: int, size: int) -> Response:
        """Store one part; the part that completes the set assembles the file and fires create.

        Parts arrive out of order from 8 SDK threads (FACTS §2). The per-file lock makes
        "count parts, maybe assemble" atomic; the real server answers 429 on contention, which
        the SDK would not retry, so waiting is the faithful-enough choice here.
        """
        with self._file_lock(bucket.id, file_id), self._lock:
            stored = bucket.files.get(file_id)
            if stored is not None and stored.complete:
                return json_response(200, stored.model())
            if stored is None:
                stored = StoredFile(
                    id=file_id, bucket_id=bucket.id, sequence=next(self._sequence),
                    name=filename, folder=folder, permissions=permissions,
                    size_original=size,
                    chunks_total=max(1, math.ceil(size / CHUNK_SIZE)))
                bucket.files[file_id] = stored
            if index >= stored.chunks_total:
                raise ApiError("storage_invalid_content_range")
            stored.parts[index] = data  # A re-sent index counts once.
            if len(stored.parts) < stored.chunks_total:
                return json_response(201, stored.model())
            stored.finish(b"".join(stored.parts[i] for i in range(stored.chunks_total)),
                          bucket)
            stored.updated_at = iso_now()
            model = stored.model()
        self._fire(bucket.id, file_id, "create", model)
        return json_response(201, model)

    # ---- files: bytes out

    def _download(self, request: Request, bucket_id: str, file_id: str) -> Response:
        _, stored = self._complete_file(bucket_id, file_id)
        headers = {"Content-Disposition": f'attachment; filename="{stored.name}"',
                   "Cache-Control": "private, max-age=3888000"}
        return self._bytes_response(request, stored, stored.mime_type, headers)

    def _view(self, request: Request, bucket_id: str, file_id: str) -> Response:
        _, stored = self._complete_file(bucket_id, file_id)
        content_type = stored.mime_type if stored.mime_type in VIEW_ALLOWED_MIMES else "text/plain"
        headers = {"Content-Disposition": f'inline; filename="{stored.name}"',
                   "Cache-Control": "private, max-age=3888000",
                   "Content-Security-Policy": "script-src none;",
                   "X-Content-Type-Options": "nosniff"}
        return self._bytes_response(request, stored, content_type, headers)

    @staticmethod
    def _bytes_response(request: Request, stored: StoredFile, content_type: str,
                        headers: dict[str, str]) -> Response:
        data = stored.data or b""
        range_header = request.headers.get("Range")
        if not range_header:
            return Response(200, data, content_type, headers)
        match = RANGE_PATTERN.fullmatch(range_header.strip())
        if not match or match.group(1) != "bytes" or not match.group(2):
            raise ApiError("storage_invalid_range")
        start = int(match.group(2))
        end = int(match.group(3)) if match.group(3) else len(data) - 1
        if start > end or end >= len(data):
            raise ApiError("storage_invalid_range")
        headers = {**headers, "Accept-Ranges": "bytes",
                   "Content-Range": f"bytes {start}-{end}/{len(data)}"}
        return Response(206, data[start:end + 1], content_type, headers)

    def _preview(self, request: Request, bucket_id: str, file_id: str) -> Response:
        params = _preview_params(request)
        _, stored = self._complete_file(bucket_id, file_id)
        # transformations=false only blocks non-key callers; every caller here has the key.
        source, icon = stored.data or b"", False
        if stored.mime_type not in PREVIEW_INPUT_MIMES or stored.size_actual > TRANSFORM_LIMIT:
            source, icon = _icon_png(stored.mime_type), True
            params["background"] = params["background"] or ICON_BACKGROUND
        output = params["output"] or _default_output(stored, icon)
        body = render_preview(source, params, output)
        return Response(200, body, PREVIEW_OUTPUTS[output],
                        {"Cache-Control": "private, max-age=2592000"})


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "$sequence"}


# --------------------------------------------------------------------------- previews


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _invalid_param(name, f"Value must be a valid range between {low:,} and {high:,}")
    return value


def _preview_params(request: Request) -> dict[str, Any]:
    """Validate preview query params with the server's ranges (FACTS §4)."""
    params: dict[str, Any] = {
        "width": _int_param(request, "width", 0, 0, 4000),
        "height": _int_param(request, "height", 0, 0, 4000),
        "quality": _int_param(request, "quality", -1, -1, 100),
        "borderWidth": _int_param(request, "borderWidth", 0, 0, 100),
        "borderRadius": _int_param(request, "borderRadius", 0, 0, 4000),
        "rotation": _int_param(request, "rotation", 0, -360, 360),
    }
    params["gravity"] = request.query_value("gravity") or "center"
    if params["gravity"] not in GRAVITY_CENTERING:
        raise _invalid_param("gravity", "Value must be one of (" +
                             ", ".join(GRAVITY_CENTERING) + ")")
    params["output"] = request.query_value("output") or ""
    if params["output"] and params["output"] not in PREVIEW_OUTPUTS:
        raise _invalid_param("output", "Value must be one of (" + ", ".join(PREVIEW_OUTPUTS) + ")")
    try:
        params["opacity"] = float(request.query_value("opacity") or 1)
    except ValueError:
        params["opacity"] = -1.0
    if not 0 <= params["opacity"] <= 1:
        raise _invalid_param("opacity", "Value must be a valid range between 0 and 1")
    for name in ("borderColor", "background"):
        value = request.query_value(name) or ""
        if value and not re.fullmatch(r"[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}", value):
            raise _invalid_param(name, "Value must be a valid hex color code")
        params[name] = value
    return params


def _default_output(stored: StoredFile, icon: bool) -> str:
    """Stored extension when it is an output format, else jpg; icons are PNGs (FACTS §4)."""
    if icon:
        return "png"
    extension = stored.name.rsplit(".", 1)[1].lower() if "." in stored.name else ""
    if extension:
        return extension if extension in PREVIEW_OUTPUTS else "jpg"
    return next((k for k, v in PREVIEW_OUTPUTS.items() if v == stored.mime_type), "jpg")


def _icon_png(mime_type: str) -> bytes:
    """A stand-in for Appwrite's `logos/none.png` (or `video.png`): a small transparent icon."""
    icon = Image.new("RGBA", (150, 150), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rectangle((40, 25, 110, 125), outline=(96, 125, 139, 255), width=6)
    if mime_type.startswith("video/"):
        draw.polygon(((62, 55), (62, 95), (95, 75)), fill=(96, 125, 139, 255))
    out = io.BytesIO()
    icon.save(out, "PNG")
    return out.getvalue()


def render_preview(source: bytes, params: dict[str, Any], output: str) -> bytes:
    """Crop/resize like Imagick's cropThumbnailImage, then decorate and encode."""
    try:
        image = Image.open(io.BytesIO(source))
        if image.width * image.height > MAX_PREVIEW_SOURCE_PIXELS:
            raise ApiError("storage_image_resolution_exceeded")
        image.load()
    except ApiError:
        raise
    except Image.DecompressionBombError as exc:
        raise ApiError("storage_image_resolution_exceeded") from exc
    except Exception as exc:  # Pillow raises many types for bad data.
        raise ApiError("storage_file_type_unsupported", f"Unable to decode image: {exc}") from exc
    image = ImageOps.exif_transpose(image).convert("RGBA")
    image = _crop(image, params["width"], params["height"], params["gravity"])
    image = _decorate(image, params)
    return _encode(image, output, params["quality"], params["background"])


def _crop(image: Image.Image, width: int, height: int, gravity: str) -> Image.Image:
    if not width and not height and gravity == "center":
        return image
    aspect = image.width / image.height
    if not width and not height:
        width, height = image.width, image.height
    elif not width:
        width = max(1, int(height * aspect))
    elif not height:
        height = max(1, int(width / aspect))
    return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS,
                        centering=GRAVITY_CENTERING[gravity])


def _decorate(image: Image.Image, params: dict[str, Any]) -> Image.Image:
    if params["opacity"] < 1:
        alpha = image.getchannel("A").point(lambda a: int(a * params["opacity"]))
        image.putalpha(alpha)
    if params["borderRadius"]:
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).rounded_rectangle((0, 0, image.width - 1, image.height - 1),
                                               radius=params["borderRadius"], fill=255)
        image.putalpha(Image.composite(image.getchannel("A"), mask, mask))
    if params["borderWidth"]:
        color = "#" + (params["borderColor"] or "000000")
        image = ImageOps.expand(image, border=params["borderWidth"], fill=color)
    if params["rotation"]:
        image = image.rotate(-params["rotation"], expand=True)  # Imagick turns clockwise.
    return image


def _encode(image: Image.Image, output: str, quality: int, background: str) -> bytes:
    if output not in PILLOW_FORMATS:
        raise ApiError("storage_file_type_unsupported",
                       f"The emulator cannot encode '{output}' previews (no Pillow encoder).")
    if background or output in ("jpg", "jpeg"):
        canvas = Image.new("RGBA", image.size, "#" + (background or "ffffff"))
        image = Image.alpha_composite(canvas, image)
    if output in ("jpg", "jpeg"):
        image = image.convert("RGB")
    options: dict[str, Any] = {}
    if quality >= 0 and output in ("jpg", "jpeg", "webp", "avif"):
        options["quality"] = quality
    out = io.BytesIO()
    image.save(out, PILLOW_FORMATS[output], **options)
    return out.getvalue()
