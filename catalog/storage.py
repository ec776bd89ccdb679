"""Storage backends for product images and model files, and the URLs/bytes other code reads.

The STORAGES setting picks the backend: local files by default, ``AppwriteStorage`` when
``APPWRITE_*`` is set. Model files have their own alias so they can live in a separate, private
bucket.

How a Django name maps to an Appwrite file (see also the README, "Appwrite Storage"):
``products/sku-1/ab12cd34-mug.jpg`` is stored as file id ``sha256(name)[:32]`` (hex) with
Appwrite ``name`` = ``ab12cd34-mug.jpg`` and ``folder`` = ``products/sku-1/``, so the console
shows the original path and a retried upload lands on the same id. Files that were put in the
bucket some other way (console, another app) are referred to as ``appwrite/<fileId>/<name>``;
the importer and the webhook give products such names.

Other code uses ``image_url``, ``thumbnail_url`` and ``read_image_bytes``; they work for local
files and for both public and private Appwrite buckets.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import posixpath
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from appwrite.exception import AppwriteException
from appwrite.input_file import InputFile
from appwrite.query import Query
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage, default_storage, storages
from django.db.models.fields.files import FieldFile
from django.urls import reverse
from django.utils import timezone
from django.utils.deconstruct import deconstructible

from catalog import appwrite
from catalog.exceptions import ImageNotFoundError, StorageError, StorageUnavailableError

logger = logging.getLogger(__name__)

# Files per list_files page: Appwrite's usual page cap; fewer round trips for big buckets.
LIST_PAGE_SIZE = 100
# JPEG quality of classifier previews: visually lossless for a model that sees 224 px; the bytes
# saved come from the smaller size, not from a harsher quality. (The preview's width is the
# caller's: the classifier asks for its preprocessing's source size, training for the same.)
CLASSIFY_PREVIEW_QUALITY = 90
# Thumbnails: webp is a third of JPEG's bytes at the same look, and every current browser shows it.
THUMBNAIL_FORMAT = "webp"
# Types Appwrite's preview decodes (FACTS §4); others get an icon instead of their pixels.
PREVIEW_INPUT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif",
                                 "image/heic"})
# Appwrite's _APP_STORAGE_PREVIEW_LIMIT: a bigger source previews as an icon.
PREVIEW_SOURCE_LIMIT = 20_000_000
# Below this an original is fetched as it is: a 448 px JPEG preview is ~30-60 KB, so previewing a
# smaller file saves little and costs a server-side transform.
PREVIEW_MIN_SOURCE_BYTES = 100 * 1024
# An upload that gave up may still land (its answer was lost) or leave chunks behind: one delete
# is tried within this many seconds, even past the request's storage deadline.
UPLOAD_CLEANUP_SECONDS = 5.0


def model_files_storage():
    """Return the storage for trained model files (the ``models`` alias in STORAGES).

    A callable rather than an instance so migrations do not freeze one environment's backend.
    """
    return storages["models"]


@deconstructible(path="catalog.storage.AppwriteStorage")
class AppwriteStorage(Storage):
    """Django storage over one Appwrite bucket, via the official SDK (timeouts + retries added).

    OPTIONS: ``bucket_id`` (defaults to ``APPWRITE["BUCKET_ID"]``). Endpoint, project, key,
    timeout and retries come from ``settings.APPWRITE`` when a call is made, so settings
    overrides in tests apply without rebuilding the storage.
    """

    def __init__(self, bucket_id: str | None = None):
        self.bucket_id = bucket_id or settings.APPWRITE["BUCKET_ID"]
        self._service = None
        self._service_config: tuple | None = None

    @property
    def service(self):
        cfg = settings.APPWRITE
        config = (cfg["ENDPOINT"], cfg["PROJECT_ID"], cfg["API_KEY"], cfg["TIMEOUT"],
                  cfg["SELF_SIGNED"])
        if config != self._service_config:
            self._service = appwrite.storage_service(
                endpoint=config[0], project_id=config[1], api_key=config[2], timeout=config[3],
                self_signed=config[4])
            self._service_config = config
        return self._service

    def _call(self, what: str, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One SDK call on this bucket, retried when transient, errors translated."""
        fn = getattr(self.service, method)
        try:
            return appwrite.call_with_retries(
                lambda: fn(self.bucket_id, *args, **kwargs),
                what=f"{what} {name} in bucket {self.bucket_id}",
                max_retries=settings.APPWRITE["MAX_RETRIES"])
        except AppwriteException as exc:
            raise appwrite.storage_error(exc, name=name, bucket_id=self.bucket_id) from exc

    # ---- Django Storage API

    def _save(self, name: str, content: File) -> str:
        file_id = appwrite.file_id_for_name(name)
        folder, base = posixpath.split(name)
        upload, md5 = _input_file(content, base)
        attempts = 0

        def create() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # An earlier attempt may have left a half-assembled chunked upload; the SDK's
                # resume counts chunks, not which ones arrived, so start over from scratch.
                self._discard_partial(file_id)
            try:
                stored = self.service.create_file(self.bucket_id, file_id, upload,
                                                  folder=folder or None)
            except AppwriteException as exc:
                # A retried upload whose first try did land (the answer was lost) is a success.
                if exc.code == 409 and self._stored_md5(file_id) == md5:
                    return
                raise
            if stored.chunksuploaded < stored.chunkstotal:
                raise AppwriteException("chunked upload incomplete", 503)

        try:
            appwrite.call_with_retries(
                create, what=f"upload {name} to bucket {self.bucket_id}",
                max_retries=settings.APPWRITE["MAX_RETRIES"])
        except StorageUnavailableError:
            self._discard_failed_upload(file_id, name)
            raise
        except AppwriteException as exc:
            raise appwrite.storage_error(exc, name=name, bucket_id=self.bucket_id) from exc
        return name

    def _discard_failed_upload(self, file_id: str, name: str) -> None:
        """The caller gets an error and will never refer to this file: make sure it is gone.

        Best effort (``sweep_orphan_files`` finds what this misses): the last attempt may have
        landed after the client stopped waiting, or left a half-assembled chunked upload.
        """
        try:
            with appwrite.grace(UPLOAD_CLEANUP_SECONDS):
                self.service.delete_file(self.bucket_id, file_id)
        except AppwriteException as exc:
            if exc.code != 404:
                logger.warning("Upload of %s gave up and its file %s could not be deleted (%s);"
                               " sweep_orphan_files will find it", name, file_id,
                               appwrite.describe(exc))

    def _open(self, name: str, mode: str = "rb") -> File:
        if any(flag in mode for flag in "wa+"):
            raise ValueError("AppwriteStorage files are read-only once stored; save a new file.")
        data = self._download(name)
        return ContentFile(data, name=name)

    def exists(self, name: str) -> bool:
        try:
            self._get(name)
        except ImageNotFoundError:
            return False
        return True

    def size(self, name: str) -> int:
        return int(self._get(name).sizeoriginal)

    def delete(self, name: str) -> None:
        try:
            self._call("delete", name, "delete_file", appwrite.file_id_for_name(name))
        except ImageNotFoundError:
            pass  # Django's contract: deleting a missing file is not an error.

    def url(self, name: str) -> str:
        if settings.APPWRITE["PUBLIC_BUCKET"]:
            return self._direct_url(name, "view")
        return reverse("media-proxy", kwargs={"name": name})

    def thumbnail_url(self, name: str, size: int) -> str:
        if settings.APPWRITE["PUBLIC_BUCKET"]:
            return self._direct_url(name, "preview", width=size, height=size,
                                    output=THUMBNAIL_FORMAT)
        return f"{reverse('media-proxy', kwargs={'name': name})}?size={size}"

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Directories and files directly under ``path`` (Django-uploaded files only).

        One ``startsWith(folder)`` listing, paged by cursor. Files added outside Django live under
        ``appwrite/<fileId>/`` names instead and are not listed by folder.
        """
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        queries = [Query.starts_with("folder", prefix)] if prefix else []
        dirs, files = set(), []
        for stored in self.iter_files(queries):
            name = self.name_for(stored)
            if name.startswith(appwrite.FOREIGN_PREFIX) or not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest:
                dirs.add(rest.split("/", 1)[0])
            else:
                files.append(rest)
        return sorted(dirs), sorted(files)

    def get_modified_time(self, name: str) -> datetime:
        return _stored_time(self._get(name).updatedat)

    def get_created_time(self, name: str) -> datetime:
        return _stored_time(self._get(name).createdat)

    # ---- Appwrite-specific reads used by the proxy view, importer and classifier

    def iter_files(self, queries: list[str] | None = None) -> Iterator[Any]:
        """Every file matching ``queries``, one page at a time (cursor pagination)."""
        cursor = None
        while True:
            page_queries = [*(queries or []), Query.limit(LIST_PAGE_SIZE)]
            if cursor:
                page_queries.append(Query.cursor_after(cursor))
            page = self._call("list files", f"page after {cursor or 'start'}", "list_files",
                              queries=page_queries)
            yield from page.files
            if len(page.files) < LIST_PAGE_SIZE:
                return
            cursor = page.files[-1].id

    def count_files(self) -> int:
        return int(self._call("count files", "", "list_files",
                              queries=[Query.limit(1)]).total)

    @staticmethod
    def name_for(stored: Any) -> str:
        """The Django name of an SDK ``File`` model."""
        return appwrite.name_for_file(file_id=stored.id, folder=stored.folder, name=stored.name)

    @staticmethod
    def file_dict(stored: Any) -> dict[str, Any]:
        """An SDK ``File`` model as the dict Appwrite's events carry (the keys catalog reads)."""
        return {"$id": stored.id, "name": stored.name, "folder": stored.folder,
                "mimeType": stored.mimetype, "chunksTotal": stored.chunkstotal,
                "chunksUploaded": stored.chunksuploaded, "$createdAt": stored.createdat,
                "$updatedAt": stored.updatedat}

    def file_now(self, file_id: str) -> dict[str, Any] | None:
        """The file with this id as Appwrite has it now (``file_dict``), or None if it is gone.

        What the webhook trusts instead of an event's body: events arrive late, twice or out
        of order, the bucket's current state does not.
        """
        try:
            stored = self._call("look up", f"file {file_id}", "get_file", file_id)
        except ImageNotFoundError:
            return None
        return self.file_dict(stored)

    def read_preview(self, name: str, *, width: int, height: int | None = None,
                     output: str = "jpg", quality: int | None = None) -> bytes:
        """Image bytes resized by Appwrite's preview endpoint (aspect kept without height)."""
        return self._call("preview", name, "get_file_preview", appwrite.file_id_for_name(name),
                          width=width, height=height, output=output, quality=quality)

    def _get(self, name: str) -> Any:
        return self._call("look up", name, "get_file", appwrite.file_id_for_name(name))

    def _download(self, name: str) -> bytes:
        # SafeClient returns a download's exact bytes, whatever type the file was stored as.
        return self._call("download", name, "get_file_download", appwrite.file_id_for_name(name))

    def _direct_url(self, name: str, endpoint: str, **params: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        project = settings.APPWRITE["PROJECT_ID"]
        return (f"{settings.APPWRITE['ENDPOINT'].rstrip('/')}/storage/buckets/{self.bucket_id}"
                f"/files/{appwrite.file_id_for_name(name)}/{endpoint}?"
                f"{query + '&' if query else ''}project={project}")

    def _discard_partial(self, file_id: str) -> None:
        try:
            stored = self.service.get_file(self.bucket_id, file_id)
        except AppwriteException:
            return  # Nothing there (the usual case), or Appwrite is down: create will tell.
        if stored.chunksuploaded < stored.chunkstotal:
            self.service.delete_file(self.bucket_id, file_id)

    def _stored_md5(self, file_id: str) -> str | None:
        try:
            return self.service.get_file(self.bucket_id, file_id).signature
        except AppwriteException:
            return None


def _input_file(content: File, base: str) -> tuple[InputFile, str]:
    """An SDK InputFile for Django content (a temp file is streamed from disk) and its md5."""
    md5 = hashlib.md5(usedforsecurity=False)
    if hasattr(content, "temporary_file_path"):
        upload = InputFile.from_path(content.temporary_file_path())
        upload.filename = base
        for chunk in content.chunks():
            md5.update(chunk)
        return upload, md5.hexdigest()
    if hasattr(content, "seek"):
        content.seek(0)
    data = b"".join(content.chunks())
    md5.update(data)
    return InputFile.from_bytes(data, base), md5.hexdigest()


def _stored_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


# --------------------------------------------------------------------------- functions others use


def _name_and_storage(file_or_name: FieldFile | str) -> tuple[str, Storage]:
    if isinstance(file_or_name, str):
        return file_or_name, default_storage
    return file_or_name.name or "", file_or_name.storage


def _where(storage: Storage) -> str:
    if isinstance(storage, AppwriteStorage):
        return f"bucket {storage.bucket_id}"
    return "local media storage"


def image_url(file: FieldFile | None) -> str:
    """A URL a browser can load for the original image ("" when there is none).

    Public bucket: straight to Appwrite's ``/view``. Private bucket: the site's cached
    ``/media-proxy/`` view. Local files: ``file.url``.
    """
    if not file:
        return ""
    return file.storage.url(file.name)


def thumbnail_url(file: FieldFile | None, *, size: int = 160) -> str:
    """A URL for a ``size`` x ``size`` webp thumbnail made by Appwrite's preview endpoint.

    Local storage has no preview service, so it returns the original's URL (the admin scales it
    with CSS); with Appwrite it is ``/preview`` (public bucket) or ``/media-proxy/…?size=``.
    """
    if not file:
        return ""
    if isinstance(file.storage, AppwriteStorage):
        return file.storage.thumbnail_url(file.name, size)
    return file.storage.url(file.name)


def read_image_bytes(file_or_name: FieldFile | str, *, preview_width: int | None = None) -> bytes:
    """The bytes the classifier (and training) decode for one image.

    Args:
        file_or_name: a product's ``image`` field file, or a name in the default storage.
        preview_width: with Appwrite and ``APPWRITE["CLASSIFY_FROM_PREVIEW"]``, the server returns
            a JPEG this many pixels wide (aspect kept), typically a tenth of a phone photo's
            bytes. The caller chooses it (``classifier.preprocessing.source_size``), so
            inference and training fetch the same pixels. Otherwise, or when Appwrite cannot
            preview the file, the original.

    Returns:
        Encoded image bytes (possibly empty: the decoder reports that as its own error).

    Raises:
        ImageNotFoundError: the file is not in storage.
        StorageError: storage failed (``StorageUnavailableError`` after every retry).
    """
    name, storage = _name_and_storage(file_or_name)
    if not name:
        raise ImageNotFoundError("(no image set)", _where(storage))
    if (isinstance(storage, AppwriteStorage) and preview_width
            and settings.APPWRITE["CLASSIFY_FROM_PREVIEW"]):
        preview = _classify_preview(storage, name, preview_width)
        if preview is not None:
            return preview
    try:
        with storage.open(name, "rb") as handle:
            return handle.read()
    except StorageError:
        raise
    except FileNotFoundError as exc:
        raise ImageNotFoundError(name, _where(storage)) from exc
    except OSError as exc:
        raise StorageError(f"Reading image {name} from {_where(storage)} failed: {exc}") from exc


def _classify_preview(storage: AppwriteStorage, name: str, width: int) -> bytes | None:
    """A JPEG preview for the classifier, or None when the original must be used instead.

    One metadata request first: Appwrite answers a preview of a non-image (or of a source over
    its preview limit) with a generic icon, which must never be classified, and a small original
    is cheaper to fetch as it is than to transform.
    """
    stored = storage._get(name)
    if (stored.mimetype not in PREVIEW_INPUT_TYPES
            or not PREVIEW_MIN_SOURCE_BYTES <= stored.sizeoriginal <= PREVIEW_SOURCE_LIMIT):
        return None
    try:
        return storage.read_preview(name, width=width, output="jpg",
                                    quality=CLASSIFY_PREVIEW_QUALITY)
    except ImageNotFoundError:
        raise
    except StorageError as exc:
        if isinstance(exc.__cause__, AppwriteException) and exc.__cause__.code == 400:
            return None  # Appwrite could not decode it: let the classifier report on the original.
        raise


def media_bytes(name: str, *, size: int | None = None) -> tuple[bytes, str]:
    """Bytes and Content-Type the media proxy serves: a webp thumbnail or the original."""
    # default_storage is a LazyObject that reports the wrapped class to isinstance().
    if size and isinstance(default_storage, AppwriteStorage):
        return (default_storage.read_preview(name, width=size, height=size,
                                             output=THUMBNAIL_FORMAT), "image/webp")
    data = read_image_bytes(name)
    return data, mimetypes.guess_type(name)[0] or "application/octet-stream"
