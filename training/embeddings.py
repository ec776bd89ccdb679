"""Backbone embeddings of labelled images, computed once per image content and cached on disk.

With a frozen pretrained backbone, an image's pooled embedding never changes, so it is computed
once and kept in a small SQLite file per (backbone, weights, input size), keyed by the SHA-256 of
the image bytes. A retrain after new labels reads every image (to hash it) but decodes and runs
the backbone only on images it has not seen; renamed or re-uploaded identical files hit the
cache too. A bounded, stable sample of decoded pixels is kept as well, for the export's
quantisation check and int8 calibration, so those do not re-decode either.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifier.preprocessing import decode_image
from training.dataset import IN_FLIGHT_PER_WORKER, LabelledItem, SkippedItem
from training.exceptions import NotEnoughDataError

# Images run through the backbone per call: large enough to use both cores well, small enough
# that a batch of 224x224 float inputs stays ~20 MB.
EMBED_BATCH = 32
# Decoded images kept for the export checks (quantisation accuracy, int8 calibration): ~100
# covers the activation ranges of a small classifier (TFLite's guidance) and resolves an
# accuracy loss of one point; kept per class so every category is represented.
PIXEL_SAMPLE = 100

Extractor = Callable[[np.ndarray], np.ndarray]


class EmbeddingCache:
    """SQLite file of ``sha256 -> float32 embedding`` (and a few images' pixels) for one backbone.

    Safe to share between threads of one process (one connection behind a lock) and between
    processes (SQLite's own locking; WAL so readers never block the writer).
    """

    def __init__(self, path: str | Path, *, dim: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embedding (sha256 TEXT PRIMARY KEY, "
                         "vector BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS pixels (sha256 TEXT PRIMARY KEY, "
                         "height INTEGER, width INTEGER, data BLOB NOT NULL)")
        self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, digest: str) -> np.ndarray | None:
        with self._lock:
            row = self._db.execute("SELECT vector FROM embedding WHERE sha256 = ?",
                                   (digest,)).fetchone()
        return None if row is None else np.frombuffer(row[0], np.float32).copy()

    def put_many(self, pairs: Sequence[tuple[str, np.ndarray]]) -> None:
        rows = [(d, np.asarray(v, np.float32).tobytes()) for d, v in pairs]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?)", rows)
            self._db.commit()

    def get_pixels(self, digest: str, size: tuple[int, int]) -> np.ndarray | None:
        with self._lock:
            row = self._db.execute("SELECT height, width, data FROM pixels WHERE sha256 = ?",
                                   (digest,)).fetchone()
        if row is None or tuple(row[:2]) != tuple(size):
            return None
        return np.frombuffer(row[2], np.uint8).reshape(row[0], row[1], 3).copy()

    def put_pixels(self, digest: str, pixels: np.ndarray) -> None:
        h, w = pixels.shape[:2]
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO pixels VALUES (?, ?, ?, ?)",
                             (digest, h, w, np.ascontiguousarray(pixels, np.uint8).tobytes()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0]


@dataclasses.dataclass
class EmbeddedSet:
    """Embeddings of the readable items, in item order, and what happened to the rest.

    ``sample`` maps a row of ``vectors`` to its decoded uint8 pixels (the export-check sample).
    """

    keys: list[str]
    labels: list[str]
    digests: list[str]
    vectors: np.ndarray
    skipped: list[SkippedItem]
    sample: dict[int, np.ndarray]
    computed: int
    given: int = 0
    # Images whose bytes were read, and of those how many were decoded (the rest hit the cache).
    read: int = 0
    decoded: int = 0

    @property
    def cached(self) -> int:
        return len(self.keys) - self.computed - self.given


@dataclasses.dataclass
class _Loaded:
    digest: str
    vector: np.ndarray | None
    pixels: np.ndarray | None
    keep_pixels: bool
    decoded: bool
    given: bool = False
    read: bool = True


def pixel_sample_keys(items: Sequence[LabelledItem], per_class_total: int = PIXEL_SAMPLE
                      ) -> set[str]:
    """A stable, class-balanced sample of item keys: the same catalog gives the same sample.

    Chosen by a hash of each key (not by a random draw), so successive retrains mostly pick the
    same images and find their pixels cached.
    """
    by_label: dict[str, list[str]] = {}
    for item in items:
        by_label.setdefault(item.label, []).append(item.key)
    quota = max(1, per_class_total // max(1, len(by_label)))
    chosen = set()
    for keys in by_label.values():
        chosen.update(sorted(keys, key=lambda k: hashlib.sha1(k.encode()).hexdigest())[:quota])
    return chosen


def embed_items(items: Sequence[LabelledItem], *, extract: Extractor, cache: EmbeddingCache,
                size: tuple[int, int], workers: int = 4, batch_size: int = EMBED_BATCH,
                backbone: str = "",
                progress: Callable[[int, int], None] | None = None) -> EmbeddedSet:
    """Embed every readable item, decoding only images the cache has not seen.

    Worker threads read each image, hash it and look it up; misses (and sampled images whose
    pixels are not cached) are decoded with ``classifier.preprocessing.decode_image``, the
    function inference uses. The main thread batches misses through ``extract``. At most
    ``workers * IN_FLIGHT_PER_WORKER`` images are in memory besides one pending batch.

    Args:
        items: labelled images, in a stable order.
        extract: ``(N, h, w, 3) uint8 -> (N, D) float32`` backbone embeddings.
        cache: where embeddings (and sampled pixels) are kept between runs.
        size: ``(height, width)`` of the backbone input.
        backbone: the extractor's backbone id; items carrying an embedding of this backbone
            are used as they are (neither read nor decoded, unless sampled for export checks
            and their pixels are not cached).
        workers: threads reading and decoding.
        batch_size: images per ``extract`` call.
        progress: called with ``(processed, total)`` as items complete.

    Returns:
        The embedded set; unreadable images are listed in ``skipped`` with the reason.

    Raises:
        NotEnoughDataError: there are no items, or none could be read.
    """
    items = list(items)
    if not items:
        raise NotEnoughDataError("No labelled images found: add images to at least two categories "
                                 "(folder layout <folder>/<category>/<image>).")
    sample_keys = pixel_sample_keys(items)
    loaded: list[_Loaded | None] = [None] * len(items)
    skipped: list[SkippedItem] = []
    batch = _PendingBatch(extract, cache, batch_size)

    def load(i: int) -> _Loaded:
        item = items[i]
        if backbone and item.embedding is not None and item.embedding_backbone == backbone:
            return _given(item, item.key in sample_keys)
        data = item.load()
        digest = hashlib.sha256(data).hexdigest()
        keep = item.key in sample_keys
        vector = cache.get(digest)
        pixels = cache.get_pixels(digest, size) if keep else None
        decoded = vector is None or (keep and pixels is None)
        if decoded:
            pixels = decode_image(data, size=size)
        return _Loaded(digest, vector, pixels, keep, decoded)

    def collect(done: set[cf.Future]) -> None:
        for future in done:
            i = pending.pop(future)
            try:
                result = future.result()
            # Loaders are caller code (Django storage, Appwrite SDK, zip files) with their own
            # error types: any failure skips that one image and is reported.
            except Exception as exc:  # noqa: BLE001
                skipped.append(SkippedItem(items[i].key, items[i].label,
                                           f"{type(exc).__name__}: {exc}"))
                continue
            loaded[i] = result
            if result.vector is None:
                batch.add(result)
            elif result.keep_pixels and result.decoded:
                cache.put_pixels(result.digest, result.pixels)
        if progress:
            progress(submitted - len(pending), len(items))

    def _given(item: LabelledItem, keep: bool) -> _Loaded:
        vector = np.asarray(item.embedding, np.float32)
        pixels = cache.get_pixels(item.digest, size) if keep and item.digest else None
        if not keep or pixels is not None:
            return _Loaded(item.digest, vector, pixels, keep, decoded=False, given=True,
                           read=False)
        data = item.load()  # a sampled image without cached pixels: the one decode it costs
        digest = item.digest or hashlib.sha256(data).hexdigest()
        return _Loaded(digest, vector, decode_image(data, size=size), keep, decoded=True,
                       given=True)

    window = max(1, workers) * IN_FLIGHT_PER_WORKER
    pending: dict[cf.Future, int] = {}
    submitted = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i in range(len(items)):
            if len(pending) >= window:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                collect(done)
            pending[pool.submit(load, i)] = i
            submitted += 1
        collect(set(cf.wait(pending).done))
    batch.flush()
    return _assemble(items, loaded, skipped, batch.computed)



class _PendingBatch:
    """Misses waiting for the backbone; flushed (embedded and cached) when full."""

    def __init__(self, extract: Extractor, cache: EmbeddingCache, size: int) -> None:
        self.extract, self.cache, self.size = extract, cache, max(1, size)
        self.entries: list[_Loaded] = []
        self.computed = 0

    def add(self, entry: _Loaded) -> None:
        self.entries.append(entry)
        if len(self.entries) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        vectors = np.asarray(self.extract(np.stack([e.pixels for e in self.entries])),
                             np.float32)
        for entry, vector in zip(self.entries, vectors):
            entry.vector = vector
            if entry.keep_pixels:
                self.cache.put_pixels(entry.digest, entry.pixels)
            else:
                entry.pixels = None  # only sampled images keep their pixels in memory
        self.cache.put_many([(e.digest, e.vector) for e in self.entries])
        self.computed += len(self.entries)
        self.entries = []


def _assemble(items: list[LabelledItem], loaded: list[_Loaded | None],
              skipped: list[SkippedItem], computed: int) -> EmbeddedSet:
    rows = [i for i, entry in enumerate(loaded) if entry is not None]
    if not rows:
        raise NotEnoughDataError(f"None of the {len(items)} images could be read (first error: "
                                 f"{skipped[0].reason}). Check the files.")
    vectors = np.stack([loaded[i].vector for i in rows]).astype(np.float32)
    sample = {n: loaded[i].pixels for n, i in enumerate(rows)
              if loaded[i].keep_pixels and loaded[i].pixels is not None}
    return EmbeddedSet(keys=[items[i].key for i in rows], labels=[items[i].label for i in rows],
                       digests=[loaded[i].digest for i in rows], vectors=vectors,
                       skipped=sorted(skipped, key=lambda s: s.key), sample=sample,
                       computed=computed, given=sum(loaded[i].given for i in rows),
                       read=sum(loaded[i].read for i in rows),
                       decoded=sum(loaded[i].decoded for i in rows))
