"""The Appwrite SDK made safe to call: timeouts, bounded retries, typed errors, id mapping.

The official SDK (27.x) sends every request through a bare ``requests.request(...)`` with no
timeout and never retries. Rather than re-implement its ``Client.call`` (and drift from it), each
client here runs the SDK's own ``call`` code with ``requests`` swapped for a small object that
adds a timeout, reuses one pooled ``requests.Session`` and remembers the last response (so a 429's
``Retry-After`` can be honoured; the SDK's exception does not carry headers).
``tests/catalog/test_storage_faults.py`` proves the timeout really applies, so an SDK upgrade
that changes this seam fails loudly.

File ids: see ``file_id_for_name`` (and the README's "Appwrite Storage" section).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
import types
from collections.abc import Callable
from typing import TypeVar

import requests
from appwrite import client as sdk_client
from appwrite.exception import AppwriteException
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

_last = threading.local()


class _TimedRequests:
    """Stands in for the ``requests`` module inside the SDK's ``Client.call``."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=HTTP_POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        _last.response = None
        response = self.session.request(**kwargs)
        _last.response = response
        return response


def last_response_bytes() -> bytes:
    """Raw body of this thread's last Appwrite response (the SDK parses JSON bodies)."""
    response = getattr(_last, "response", None)
    return response.content if response is not None else b""


def storage_service(*, endpoint: str, project_id: str, api_key: str, timeout: float,
                    self_signed: bool = False) -> StorageService:
    """An SDK ``Storage`` service whose requests time out after ``timeout`` seconds."""
    client = sdk_client.Client()
    client.set_endpoint(endpoint).set_project(project_id).set_key(api_key)
    client.set_self_signed(self_signed)
    sdk_globals = {**vars(sdk_client), "requests": _TimedRequests(timeout)}
    call = types.FunctionType(sdk_client.Client.call.__code__, sdk_globals, "call",
                              sdk_client.Client.call.__defaults__)
    client.call = types.MethodType(call, client)
    return StorageService(client)


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
    """Connection errors and timeouts (code 0 from requests), 429 and 5xx; never other 4xx."""
    if exc.code == 0:
        return isinstance(exc.message, requests.RequestException)
    return exc.code == 429 or exc.code >= 500


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (full jitter, Retry-After wins)."""
    delay = random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def _retry_after_seconds() -> float | None:
    response = getattr(_last, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # An HTTP date; Appwrite sends seconds, so fall back to backoff.
        return None


def describe(exc: AppwriteException) -> str:
    if exc.code == 0:
        kind = "timeout" if isinstance(exc.message, requests.Timeout) else "connection error"
        return f"{kind}: {exc.message}"
    return f"HTTP {exc.code} {exc.type or ''}: {exc.message}".replace("  ", " ")


def call_with_retries(operation: Callable[[], T], *, what: str, max_retries: int) -> T:
    """Run ``operation`` (one SDK call), retrying transient failures with backoff.

    Raises:
        StorageUnavailableError: still failing after ``max_retries`` retries.
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
            if attempt == attempts - 1:
                raise StorageUnavailableError(what, attempts, describe(exc)) from exc
            delay = retry_delay(attempt, _retry_after_seconds() if exc.code == 429 else None)
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
