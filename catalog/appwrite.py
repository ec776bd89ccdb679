"""The Appwrite SDK made safe to call: timeouts, bounded retries, typed errors, id mapping.

The official SDK (27.x) sends every request through a bare ``requests.request(...)`` with no
timeout, never retries, and cannot read some answers a proxy in front of Appwrite gives (a 502
without ``Content-Type`` raises ``KeyError``; a 200 labelled JSON whose body is not JSON raises
``JSONDecodeError``). ``SafeClient`` is a documented ``Client`` subclass: every SDK service
(``Storage(client)``) sends its requests through ``Client.call``, and ``SafeClient.call`` does the
HTTP itself on one pooled ``requests.Session`` with a timeout, and turns every answer into data or
an ``AppwriteException`` the retry code understands. ``tests/catalog/test_storage_faults.py`` and
``tests/classifier/test_chunk_faults.py`` prove it against injected faults, so an SDK upgrade that
changes how services call the client fails loudly.

File ids: see ``file_id_for_name`` (and the README's "Appwrite Storage" section).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from appwrite import client as sdk_client
from appwrite.encoders.value_class_encoder import ValueClassEncoder
from appwrite.exception import AppwriteException
from appwrite.input_file import InputFile
from appwrite.query import Query
from appwrite.services.storage import Storage as StorageService
from requests.adapters import HTTPAdapter

from catalog.exceptions import ImageNotFoundError, StorageError, StorageUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Names of files that exist in Appwrite but were not uploaded through Django (console uploads,
# other apps): "appwrite/<fileId>/<name>". The id is read back from the name, so these names map
# to the file that already exists instead of to a hash.
FOREIGN_PREFIX = "appwrite/"
FOREIGN_NAME = re.compile(r"appwrite/(?P<id>[A-Za-z0-9][A-Za-z0-9._-]{0,35})/(?P<name>[^/]+)")
# 32 hex chars = 128 bits of SHA-256: collisions are out of reach for any catalog, and it fits
# Appwrite's 36-char id limit with a letter/digit first (never "_", "." or "-").
FILE_ID_HEX_CHARS = 32
# Appwrite's update_file caps names at 128 chars; keep foreign names well inside ImageField's 255.
MAX_FILE_NAME_CHARS = 128

# Backoff: full jitter over base * 2**attempt, capped, so many workers retrying after an outage
# do not hit Appwrite in lock-step. 0.25 s base: a blip recovers fast; 8 s cap: a 4-retry call
# gives up within ~15 s, well inside the task timeout.
RETRY_BASE_SECONDS = 0.25
RETRY_CAP_SECONDS = 8.0
# A 429's Retry-After is honoured up to this; Appwrite's lock contention asks for 5 s, and a
# longer wait belongs to the task queue's retry, not to a blocked worker.
MAX_RETRY_AFTER_SECONDS = 30.0
# Concurrent connections per client: the SDK uploads 8 chunks in parallel and the classifier
# fetches with CLASSIFIER_FETCH_WORKERS (default 8) threads.
HTTP_POOL_SIZE = 16
# Bodies quoted in error messages are cut here: an HTML error page is not worth more.
QUOTED_BODY_CHARS = 200


class MalformedAnswer(AppwriteException):
    """Appwrite (or a proxy in front of it) answered with something that is not its API's answer:
    a JSON endpoint's body that is not JSON. Transient in practice (a proxy's error page), so it
    is retried like a 5xx."""


class HTTPErrorAnswer(AppwriteException):
    """An HTTP error status; ``retry_after`` holds a 429's ``Retry-After`` seconds, if any."""

    def __init__(self, message: str, code: int, type: str | None, response: str,
                 retry_after: float | None):
        super().__init__(message, code, type, response)
        self.retry_after = retry_after


class SafeClient(sdk_client.Client):
    """The SDK's ``Client`` with a pooled session, a timeout, and answers it can always read.

    ``call`` keeps the SDK's request encoding (JSON or multipart bodies, flattened query params)
    and replaces only the transport and the reading of the answer:

    - the request goes through one ``requests.Session`` (pooled keep-alive connections) with a
      timeout: ``timeout`` seconds, or less inside ``deadline()``;
    - an empty body (delete's 204) is ``b""``, as in the SDK;
    - binary endpoints (download, view, preview: the SDK sends ``accept: */*``) return the body's
      exact bytes, also for a stored file typed ``application/json`` (the SDK would parse it);
    - a body that is not JSON on a JSON endpoint, or that is labelled JSON but does not parse
      (a proxy's half-written error page with status 200), raises ``MalformedAnswer`` (retried);
    - error statuses raise ``HTTPErrorAnswer`` with Appwrite's message and type when the body is
      Appwrite's JSON, the body text otherwise (no ``Content-Type`` needed), and ``Retry-After``.
    """

    def __init__(self, *, timeout: float):
        super().__init__()
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=HTTP_POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def call(self, method, path="", headers=None, params=None, response_type="json"):
        headers = {**self._global_headers, **(headers or {})}
        params = {key: Query._flatten(value) for key, value in (params or {}).items()}
        query, data, files = self._encode(method, headers, params)
        try:
            response = self.session.request(
                method=method, url=self._endpoint + path, params=query, data=data, files=files,
                headers=headers, verify=not self._self_signed, timeout=_attempt_timeout(self),
                allow_redirects=response_type != "location")
        except requests.RequestException as exc:
            raise AppwriteException(exc) from exc  # code 0: a connection error or timeout
        if response.status_code >= 400:
            raise _error_answer(response)
        if response.headers.get("x-appwrite-warning"):
            logger.warning("Appwrite warns: %s", response.headers["x-appwrite-warning"])
        if response_type == "location":
            return response.headers.get("Location")
        if response_type == "text":
            return response.content.decode("utf-8", errors="replace")
        if not response.content:
            return response.content  # 204 No Content (delete)
        if headers.get("accept") == "application/json" or _labelled_json(response):
            parsed = _json_answer(response)
            if headers.get("accept") == "application/json":
                return parsed
        return response.content

    def _encode(self, method: str, headers: dict, params: dict) -> tuple[Any, Any, dict]:
        """Query params, body and multipart files exactly as the SDK's own ``call`` builds them."""
        query, data, files, stringify = params, {}, {}, False
        if method != "get":
            query, data = {}, params
        if headers["content-type"].startswith("application/json"):
            data = json.dumps(data, cls=ValueClassEncoder)
        if headers["content-type"].startswith("multipart/form-data"):
            del headers["content-type"]
            stringify = True
            for key in list(data):
                if isinstance(data[key], InputFile):
                    files[key] = (data[key].filename, data[key].data)
                    del data[key]
            data = self.flatten(data, stringify=stringify)
            if not files and data:  # Without a file, requests would send a URL-encoded body.
                files, data = {key: (None, value) for key, value in data.items()}, {}
            elif not files:  # With no parts at all, close an empty multipart body.
                boundary = os.urandom(16).hex()
                headers["content-type"] = f"multipart/form-data; boundary={boundary}"
                data = f"--{boundary}--\r\n"
        return self.flatten(query, stringify=stringify), data, files


def _labelled_json(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").startswith("application/json")


def _json_answer(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise MalformedAnswer(
            f"HTTP {response.status_code} answer labelled "
            f"{response.headers.get('Content-Type') or 'with no Content-Type'} is not Appwrite's "
            f"JSON: {response.text[:QUOTED_BODY_CHARS]!r}", response.status_code, None,
            response.text) from exc


def _error_answer(response: requests.Response) -> HTTPErrorAnswer:
    message, error_type = response.text[:QUOTED_BODY_CHARS] or response.reason, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message, error_type = body["message"], body.get("type")
    retry_after = response.headers.get("Retry-After")
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:  # An HTTP date; Appwrite sends seconds, so fall back to backoff.
        seconds = None
    return HTTPErrorAnswer(message, response.status_code, error_type, response.text, seconds)


def storage_service(*, endpoint: str, project_id: str, api_key: str, timeout: float,
                    self_signed: bool = False) -> StorageService:
    """An SDK ``Storage`` service on a ``SafeClient`` whose requests time out."""
    client = SafeClient(timeout=timeout)
    client.set_endpoint(endpoint).set_project(project_id).set_key(api_key)
    client.set_self_signed(self_signed)
    return StorageService(client)


# --------------------------------------------------------------------------- deadlines

_deadline = threading.local()


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Bound every storage call this thread makes inside the block to ``seconds`` in total.

    Retries stop when the next attempt could not finish in time, and each request's timeout
    shrinks to what is left, so a web request's storage work ends before the server's worker
    timeout (see ``config/gunicorn.conf.py``). ``None`` leaves calls bounded only by their own
    timeout and retries. Nested blocks keep the earlier end.
    """
    previous = getattr(_deadline, "at", None)
    at = time.monotonic() + seconds if seconds is not None else None
    if previous is not None and (at is None or previous < at):
        at = previous
    _deadline.at = at
    try:
        yield
    finally:
        _deadline.at = previous


@contextmanager
def grace(seconds: float) -> Iterator[None]:
    """A short, separate allowance for clean-up after the deadline (deleting a file an upload
    that gave up may have left), so the clean-up is not refused for the time already spent."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = previous


def _remaining() -> float | None:
    at = getattr(_deadline, "at", None)
    return None if at is None else at - time.monotonic()


def _attempt_timeout(client: SafeClient) -> float:
    remaining = _remaining()
    return client.timeout if remaining is None else max(0.001, min(client.timeout, remaining))


# --------------------------------------------------------------------------- ids


def file_id_for_name(name: str) -> str:
    """The Appwrite file id that holds the Django file ``name``.

    Django chooses names (``products/sku-1/ab12cd34-mug.jpg``); Appwrite ids are at most 36 chars
    of ``a-zA-Z0-9._-``. The id is the first 32 hex chars of SHA-256 of the name: deterministic
    (no lookup table, a retried upload lands on the same id), and the file keeps its readable
    name and folder in Appwrite (``name`` = basename, ``folder`` = the Django directory).
    Names ``appwrite/<fileId>/<name>`` refer to files that were not uploaded through Django and
    map to ``<fileId>`` itself.
    """
    foreign = FOREIGN_NAME.fullmatch(name)
    if foreign:
        return foreign["id"]
    return hashlib.sha256(name.encode()).hexdigest()[:FILE_ID_HEX_CHARS]


def name_for_file(*, file_id: str, folder: str, name: str) -> str:
    """The Django name for an Appwrite file (the inverse of ``file_id_for_name``).

    A file Django uploaded gets its original name back (folder + name hashes to its id); any
    other file gets ``appwrite/<fileId>/<name>``.
    """
    base = (name.replace("/", "_") or file_id)[-MAX_FILE_NAME_CHARS:]
    folder = f"{folder.rstrip('/')}/" if folder.strip("/") else ""
    candidate = folder + base
    if file_id_for_name(candidate) == file_id and not FOREIGN_NAME.fullmatch(candidate):
        return candidate
    return f"{FOREIGN_PREFIX}{file_id}/{base}"


# --------------------------------------------------------------------------- errors and retries


def is_retryable(exc: AppwriteException) -> bool:
    """Connection errors and timeouts (code 0 from requests), malformed answers, 429 and 5xx;
    never other 4xx."""
    if isinstance(exc, MalformedAnswer):
        return True
    if exc.code == 0:
        return isinstance(exc.message, requests.RequestException)
    return exc.code == 429 or exc.code >= 500


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (full jitter, Retry-After wins)."""
    delay = random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def describe(exc: AppwriteException) -> str:
    if isinstance(exc, MalformedAnswer):
        return f"malformed answer: {exc.message}"
    if exc.code == 0:
        kind = "timeout" if isinstance(exc.message, requests.Timeout) else "connection error"
        return f"{kind}: {exc.message}"
    return f"HTTP {exc.code} {exc.type or ''}: {exc.message}".replace("  ", " ")


def call_with_retries(operation: Callable[[], T], *, what: str, max_retries: int) -> T:
    """Run ``operation`` (one SDK call), retrying transient failures with backoff.

    Inside ``deadline()``, no retry starts that could not end in time.

    Raises:
        StorageUnavailableError: still failing after ``max_retries`` retries (or the deadline).
        AppwriteException: a non-retryable answer (4xx); callers translate it with
            ``storage_error``.
    """
    attempts = max_retries + 1
    for attempt in range(attempts):
        try:
            return operation()
        except AppwriteException as exc:
            if not is_retryable(exc):
                raise
            retry_after = getattr(exc, "retry_after", None) if exc.code == 429 else None
            delay = retry_delay(attempt, retry_after)
            remaining = _remaining()
            if attempt == attempts - 1 or (remaining is not None and remaining <= delay):
                raise StorageUnavailableError(what, attempt + 1, describe(exc)) from exc
            logger.warning("Appwrite %s failed (%s); retry %d/%d in %.2fs",
                           what, describe(exc), attempt + 1, max_retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def storage_error(exc: AppwriteException, *, name: str, bucket_id: str) -> StorageError:
    """Translate an SDK error into the catalog's typed errors, with what to do about it."""
    if exc.type == "storage_file_not_found" or (exc.code == 404 and exc.type is None):
        return ImageNotFoundError(name, f"bucket {bucket_id}")
    if exc.type == "storage_bucket_not_found":
        return StorageError(
            f"Appwrite bucket {bucket_id} does not exist. Create it in the Appwrite console or "
            "fix APPWRITE_BUCKET_ID / APPWRITE_MODELS_BUCKET_ID."
        )
    if exc.code == 401 or exc.type == "project_not_found":
        return StorageError(
            f"Appwrite refused the credentials ({exc.message}). Check APPWRITE_PROJECT_ID and "
            "that APPWRITE_API_KEY is valid with the files.read and files.write scopes."
        )
    return StorageError(
        f"Appwrite rejected the request for {name} in bucket {bucket_id}: {describe(exc)}."
    )
