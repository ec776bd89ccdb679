"""The serving side's model cache: the active model version's LiteRT classifier, per thread."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass

from django.conf import settings

from classifier.contract import InputContract
from classifier.exceptions import ModelLoadError, NoActiveModelError
from classifier.inference import LiteRTClassifier
from classifier.models import ModelVersion
from classifier.references import ReferenceSet, load_reference_set

logger = logging.getLogger(__name__)

# Interpreters are not thread-safe, so each thread gets its own; the model file's bytes are
# shared by the process (read from storage and checksummed once per version).
_local = threading.local()

# Images per interpreter invoke. A chunk is still one predict call; the interpreter's activation
# arena grows with the batch (a 180x180 CNN: ~5 MB per image), and 16 keeps it ~80 MB while the
# per-image time stays within ~3% of batch 64 (measured: 1.39 vs 1.35 ms/image; peak RSS 165 vs
# 331 MB).
INVOKE_BATCH = 16
_bytes_lock = threading.Lock()
_model_bytes: dict[tuple[int, str], bytes] = {}
# One version's labelled embeddings per process (read-only, so shared by threads).
_references: dict[tuple[int, str], ReferenceSet | None] = {}


@dataclass(frozen=True)
class LoadedModel:
    """A ready classifier and the version it belongs to (what results are recorded against)."""

    version_id: int
    number: int
    checksum: str
    labels: tuple[str, ...]
    contract: InputContract
    classifier: LiteRTClassifier

    @property
    def key(self) -> tuple[int, str]:
        return (self.version_id, self.checksum)


def active_model_key() -> tuple[int, str]:
    """``(id, checksum)`` of the active version: one indexed query, run per chunk or request.

    Raises:
        NoActiveModelError: No version is active.
    """
    row = ModelVersion.objects.filter(is_active=True).values_list("pk", "checksum").first()
    if row is None:
        raise NoActiveModelError()
    return row


def get_active_model() -> LoadedModel:
    """The active version's classifier for this thread, reloaded when another is activated.

    The active id is checked on every call (cheap), so activating or rolling back a version
    takes effect at the next chunk or API request without restarting workers.

    Raises:
        NoActiveModelError: No version is active.
        ModelLoadError: The file is missing, fails its checksum or is not a usable model.
        ModelContractError: The model does not match its stored input contract.
    """
    key = active_model_key()
    cached: LoadedModel | None = getattr(_local, "model", None)
    if cached is not None and cached.key == key:
        return cached
    _local.model = None  # Let the old interpreter go before the new one is allocated.
    _local.model = _load(key)
    return _local.model


def clear_cache() -> None:
    """Forget every loaded model (tests, and workers that want memory back)."""
    _local.model = None
    with _bytes_lock:
        _model_bytes.clear()
        _references.clear()


def reference_set(version_id: int) -> ReferenceSet | None:
    """The version's labelled embeddings, or ``None`` when it has none or they cannot be read.

    A damaged file only switches the near-duplicate rule off (logged): the confidence threshold
    still decides, so classification never fails for it.
    """
    row = (ModelVersion.objects.filter(pk=version_id)
           .values_list("reference_file", "embedding_dim", "labels").first())
    if row is None or not row[0]:
        return None
    key = (version_id, row[0])
    with _bytes_lock:
        if key in _references:
            return _references[key]
        _references.clear()  # one version per process, like the model bytes
        try:
            storage = ModelVersion._meta.get_field("reference_file").storage
            with storage.open(row[0], "rb") as handle:
                _references[key] = load_reference_set(handle.read(), dim=row[1],
                                                      num_labels=len(row[2]))
        except (OSError, ModelLoadError) as exc:
            logger.warning("Model version %s: labelled embeddings %s unusable (%s); the "
                           "near-duplicate rule is off", version_id, row[0], exc)
            _references[key] = None
        return _references[key]


def _load(key: tuple[int, str]) -> LoadedModel:
    version = ModelVersion.objects.get(pk=key[0])
    contract = InputContract.from_dict(version.input_contract)
    classifier = LiteRTClassifier(
        _model_content(version), labels=version.labels, contract=contract,
        num_threads=settings.CLASSIFIER["NUM_THREADS"], max_batch=INVOKE_BATCH,
    )
    logger.info("Loaded model v%s (%s labels, input %sx%s) in thread %s", version.number,
                len(version.labels), contract.height, contract.width, threading.get_ident())
    return LoadedModel(version_id=version.pk, number=version.number, checksum=version.checksum,
                       labels=tuple(version.labels), contract=contract, classifier=classifier)


def _model_content(version: ModelVersion) -> bytes:
    key = (version.pk, version.checksum)
    with _bytes_lock:
        if key in _model_bytes:
            return _model_bytes[key]
        content = _read_model_file(version)
        digest = hashlib.sha256(content).hexdigest()
        if digest != version.checksum:
            raise ModelLoadError(
                f"The file of model version v{version.number} ({version.file.name}) does not "
                f"match its stored SHA-256 checksum (got {digest[:12]}…, expected "
                f"{version.checksum[:12]}…): it was changed or corrupted in storage. Re-export "
                "the model version or activate another one."
            )
        _model_bytes.clear()  # One version per process: the previous bytes are not needed.
        _model_bytes[key] = content
        return content


def _read_model_file(version: ModelVersion) -> bytes:
    if not version.file.name:
        raise ModelLoadError(f"Model version v{version.number} has no file. Re-export it.")
    try:
        with version.file.storage.open(version.file.name, "rb") as handle:
            return handle.read()
    except OSError as exc:  # FileNotFoundError, and storage backends' I/O errors
        raise ModelLoadError(
            f"The file of model version v{version.number} ({version.file.name}) cannot be read "
            f"from storage ({exc}). Re-export the model version or activate another one."
        ) from exc
