"""A read-only, memory-mapped nearest-neighbour index over product embeddings (cosine similarity).

One file holds everything: a JSON header (backbone, kind, dims, build time), the sorted product
ids, and either the float16 vectors (``exact``: brute force, perfect recall) or a usearch HNSW
graph with its float16 vectors (``hnsw``: approximate, for large catalogs). ``open`` maps the file
read-only, so every web process on a machine shares one copy through the page cache, and a
rebuild replaces the file atomically (processes that still map the old file keep reading it until
they reopen; ``open_latest`` reopens when the file changed). usearch is imported lazily.
bench/similar_index.py measured the choices below.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from classifier.exceptions import BackboneMismatchError, EmbeddingFormatError, IndexFileError
from classifier.similarity.encoding import l2_normalise

KIND_EXACT = "exact"
KIND_HNSW = "hnsw"
KIND_AUTO = "auto"
# Up to this many vectors an exact float16 scan (usearch SIMD, 2 threads) answers within ~15 ms
# at 1280 dims (bench/similar_index.py: ~26 ms at 100k), with perfect recall, no build time and
# exact filtering; above it the HNSW graph keeps p99 in single-digit milliseconds.
EXACT_MAX_COUNT = 50_000
# HNSW graph degree, build breadth and default search breadth: recall@10 >= 0.99 at 1M x 1280 in
# bench/similar_index.py (see README "Similar products at scale").
HNSW_CONNECTIVITY = 16
HNSW_EXPANSION_ADD = 128
HNSW_EXPANSION_SEARCH = 64
# An allowed-id filter smaller than this is answered by an exact scan of just those vectors
# (cheaper than over-fetching from the graph and throwing most results away).
FILTER_EXACT_MAX = 20_000
# Threads of a build, a duplicate scan or an exact scan (the web host's 2 cores); a single graph
# query uses one thread, so concurrent requests each get a core.
THREADS = 2
# Vectors normalised and written per step of a build (50k x 1280 float32 = 256 MB of scratch).
BUILD_CHUNK = 50_000

_MAGIC = b"CCSIMIX1"  # catalog-classifier similarity index, format 1
_PREAMBLE = struct.Struct("<8sQ")  # magic, header length
_ALIGN = 64  # sections start on cache-line boundaries so the mapped arrays are aligned


@dataclass(frozen=True)
class Neighbour:
    """One result: a product id and its cosine similarity to the query (1.0 = same direction)."""

    id: int
    score: float


@dataclass(frozen=True)
class DuplicatePair:
    """Two product ids (``a < b``) whose embeddings have cosine similarity ``score``."""

    a: int
    b: int
    score: float


class SimilarityIndex:
    """An opened index file. Build with ``SimilarityIndex.build``, open with ``open``.

    Attributes:
        path: The file it was opened from.
        backbone: The backbone tag every vector came from; queries must carry the same tag.
        kind: ``KIND_EXACT`` or ``KIND_HNSW``.
        dims: Vector width.
        count: Number of vectors.
        built_at: When the index was built (UTC).
        build_seconds: How long building took (encoding, graph, writing).
        ids: The product ids, sorted ascending (a read-only view into the mapped file).
    """

    def __init__(self, path: Path, header: dict, mapped: mmap.mmap):
        self.path = path
        self.backbone: str = header["backbone"]
        self.kind: str = header["kind"]
        self.dims: int = header["dims"]
        self.count: int = header["count"]
        self.built_at = datetime.fromisoformat(header["built_at"])
        self.build_seconds: float = header["build_seconds"]
        self._mapped = mapped
        # usearch's per-thread search contexts are keyed by its own thread slots, not Python's
        # threads: one graph query at a time per process (each takes well under a millisecond).
        self._lock = threading.Lock()
        ids_at, data_at = header["ids_offset"], header["data_offset"]
        data_size = header["data_size"]
        self.ids = np.frombuffer(mapped, dtype="<i8", count=self.count, offset=ids_at)
        if self.kind == KIND_EXACT:
            self._vectors = np.frombuffer(mapped, dtype="<f2", count=self.count * self.dims,
                                          offset=data_at).reshape(self.count, self.dims)
            self._graph = None
        else:
            from usearch.index import Index

            # view=True maps the graph and its vectors from our mapping: nothing is copied.
            self._graph = Index.restore(memoryview(mapped)[data_at:data_at + data_size],
                                        view=True)
            self._graph.expansion_search = HNSW_EXPANSION_SEARCH
            self._vectors = None

    # --- Building and opening ------------------------------------------------------------------

    @classmethod
    def build(cls, path: str | os.PathLike, *, ids, vectors, backbone: str,
              kind: str = KIND_AUTO) -> SimilarityIndex:
        """Build an index from embeddings and write it atomically to ``path``; returns it opened.

        Vectors are L2-normalised and stored as float16 (cosine scores move by < 1e-3; recall is
        unchanged, see bench/similar_index.py). The file appears at ``path`` only when complete
        (written beside it, then renamed over it), so a reader never sees half an index.

        Args:
            path: Destination file; its folder must exist.
            ids: Unique int64 product ids, one per vector.
            vectors: ``(len(ids), dims)`` float embeddings, all from ``backbone``.
            backbone: Tag of the model that computed them (e.g. ``"efficientnet_lite0"``).
            kind: ``KIND_EXACT``, ``KIND_HNSW`` or ``KIND_AUTO`` (exact up to
                ``EXACT_MAX_COUNT`` vectors).

        Raises:
            EmbeddingFormatError: shapes disagree, ids repeat, or a vector is all zeros / NaN.
        """
        started = time.perf_counter()
        if not hasattr(vectors, "shape"):  # a list; arrays (even memory-mapped) stay as they are
            vectors = np.asarray(vectors, dtype=np.float32)
        ids, order = _checked_ids(ids, vectors)
        if kind == KIND_AUTO:
            kind = KIND_EXACT if len(ids) <= EXACT_MAX_COUNT else KIND_HNSW
        if kind not in (KIND_EXACT, KIND_HNSW) or not backbone:
            raise EmbeddingFormatError(
                f"An index needs a backbone tag and a kind of {KIND_EXACT!r}, {KIND_HNSW!r} or "
                f"{KIND_AUTO!r}; got backbone {backbone!r}, kind {kind!r}.")
        path = Path(path)
        chunks = _normalised_chunks(vectors, order)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".simindex-") as scratch:
            data_file = Path(scratch) / "data"
            if kind == KIND_EXACT:
                with open(data_file, "wb") as out:
                    for _, chunk in chunks:
                        out.write(chunk.astype("<f2").tobytes())
            else:
                _hnsw_write(data_file, chunks, dims=vectors.shape[1])
            header = {"backbone": backbone, "kind": kind, "dims": int(vectors.shape[1]),
                      "count": len(ids), "built_at": datetime.now(UTC).isoformat(),
                      "build_seconds": time.perf_counter() - started}
            _write_file(path, Path(scratch) / "index", header, ids, data_file)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> SimilarityIndex:
        """Map an index file read-only (shared with every other process that maps it).

        Raises:
            IndexFileError: missing, truncated or not an index file of this format.
        """
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as error:  # ValueError: an empty file cannot be mapped
            raise IndexFileError(
                f"The similarity index {path} cannot be opened ({error}). Rebuild it.") from None
        try:
            magic, header_size = _PREAMBLE.unpack_from(mapped)
            header = json.loads(mapped[_PREAMBLE.size:_PREAMBLE.size + header_size])
            end = header["data_offset"] + header["data_size"]
            if magic != _MAGIC or end > len(mapped):
                raise ValueError("wrong magic or truncated")
            return cls(path, header, mapped)
        except (struct.error, ValueError, KeyError, RuntimeError) as error:
            mapped.close()
            raise IndexFileError(
                f"The similarity index {path} is truncated or not an index file of this version "
                f"({error}). Rebuild it.") from None

    def close(self) -> None:
        """Unmap the file (results and arrays taken from this index must not be used after)."""
        self._graph = self._vectors = self.ids = None
        try:
            self._mapped.close()
        except BufferError:  # a view is still exported (e.g. held by usearch); the GC unmaps
            pass

    # --- Queries -------------------------------------------------------------------------------

    def query(self, vector, *, backbone: str, k: int = 10, allowed=None,
              exclude=()) -> list[Neighbour]:
        """The ``k`` stored vectors most similar to ``vector``, best first.

        Args:
            vector: One embedding (any scale; it is L2-normalised here).
            backbone: The tag of the model that computed ``vector``; must equal ``self.backbone``.
            k: How many results at most.
            allowed: Optional ids that may be returned; others are skipped. Up to
                ``FILTER_EXACT_MAX`` ids are scanned exactly; a larger set filters an over-fetched
                graph result, and looking it up costs O(len(allowed)) per query (a few hundred ms
                for a million ids), so build the index from the population searched (e.g. published
                products only) and pass the few changes since the build as ``exclude``.
            exclude: Ids never returned (e.g. the product itself, products unpublished since
                the index was built).

        Raises:
            BackboneMismatchError: ``backbone`` or the vector's width differs from the index's.
            EmbeddingFormatError: the vector is all zeros or not finite.
        """
        query = self._checked_query(vector, backbone)
        if k <= 0 or self.count == 0:
            return []
        positions = None
        if allowed is not None:
            positions = self._positions(np.setdiff1d(_id_array(allowed), _id_array(exclude)))
        if self.kind == KIND_EXACT or (positions is not None and len(positions)
                                       <= FILTER_EXACT_MAX):
            return self._scan(query, k, positions, exclude)
        return self._graph_query(query, k, positions, exclude)

    def vector(self, product_id: int) -> np.ndarray | None:
        """The stored (float16-rounded, unit) vector of ``product_id``, or None if absent."""
        positions = self._positions(np.array([product_id]))
        if not len(positions):
            return None
        return self._rows(positions)[0].astype(np.float32)

    def near_duplicates(self, *, threshold: float, k: int = 5) -> list[DuplicatePair]:
        """All pairs whose cosine similarity is >= ``threshold``, highest first.

        Each vector's ``k`` nearest neighbours are searched (batched, ``THREADS`` threads), so a
        group of more than ``k + 1`` identical images yields only each member's ``k`` closest
        partners; ``k`` = 5 is plenty for duplicates, which come in pairs or small groups.
        An exact index scans all pairs (quadratic: fine up to ``EXACT_MAX_COUNT``).
        """
        pairs: dict[tuple[int, int], float] = {}
        batch = 4096  # vectors per batched search: bounds the scratch memory of the scores
        for start in range(0, self.count, batch):
            rows = self._rows(np.arange(start, min(start + batch, self.count)))
            keys, distances = self._search_batch(rows, k + 1)
            for offset, (row_keys, row_distances) in enumerate(zip(keys, distances)):
                mine = start + offset
                for key, distance in zip(row_keys, row_distances):
                    score = 1.0 - float(distance)
                    if key != mine and 0 <= key < self.count and score >= threshold:
                        a, b = sorted((int(self.ids[mine]), int(self.ids[key])))
                        pairs[(a, b)] = max(score, pairs.get((a, b), -1.0))
        ordered = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
        return [DuplicatePair(a, b, min(score, 1.0)) for (a, b), score in ordered]

    # --- Internals -----------------------------------------------------------------------------

    def _checked_query(self, vector, backbone: str) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32)
        if backbone != self.backbone or array.shape != (self.dims,):
            raise BackboneMismatchError(
                f"The query embedding is from backbone {backbone!r} with shape {array.shape}, "
                f"the similarity index from {self.backbone!r} with {self.dims} dims. Rebuild the "
                "index after changing the backbone, or classify with the matching model.")
        return l2_normalise(array)

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of those ``ids`` that are in the index (ids are sorted at build)."""
        ids = np.asarray(ids, dtype=np.int64)
        positions = np.searchsorted(self.ids, ids)
        present = positions < self.count
        present[present] = self.ids[positions[present]] == ids[present]
        return positions[present]

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        """Stored float16 vectors at ``positions``."""
        if self._vectors is not None:
            return self._vectors[positions]
        return np.asarray(self._graph.get(positions.astype(np.uint64), dtype=np.float16),
                          dtype=np.float16).reshape(len(positions), self.dims)

    def _scan(self, query, k, positions, exclude) -> list[Neighbour]:
        """Exact top-k over every row (exact kind), or over ``positions`` only."""
        from usearch.index import search

        rows = self._vectors if positions is None else self._rows(positions)
        if not len(rows):
            return []
        skip = _id_array(exclude)
        count = min(k + len(skip), len(rows))
        found = search(rows, query.astype(np.float16), count, "cos", exact=True, threads=THREADS)
        keys = np.asarray(found.keys, dtype=np.int64)
        return self._neighbours(keys if positions is None else positions[keys], found.distances,
                                skip, k)

    def _graph_query(self, query, k, positions, exclude) -> list[Neighbour]:
        """HNSW query, over-fetching (doubling) until ``k`` results survive the filters."""
        skip = _id_array(exclude)
        allowed_share = 1.0 if positions is None else len(positions) / self.count
        fetch = int(min(self.count, (k + len(skip)) / max(allowed_share, 1e-9) * 1.5 + 1))
        while True:
            with self._lock:
                found = self._graph.search(query, fetch, threads=1)
            keys = np.asarray(found.keys, dtype=np.int64)
            distances = np.asarray(found.distances)
            if positions is not None:  # sorted: membership by binary search, O(fetch log n)
                at = np.minimum(np.searchsorted(positions, keys), len(positions) - 1)
                keep = positions[at] == keys
                keys, distances = keys[keep], distances[keep]
            result = self._neighbours(keys, distances, skip, k)
            if len(result) >= k or fetch >= self.count:
                return result
            fetch = min(self.count, fetch * 2)

    def _neighbours(self, positions, distances, skip, k) -> list[Neighbour]:
        out = []
        skip = set(skip.tolist())
        for position, distance in zip(positions.tolist(), np.asarray(distances).tolist()):
            product_id = int(self.ids[position])
            if product_id not in skip:
                out.append(Neighbour(product_id, min(1.0, 1.0 - distance)))
            if len(out) == k:
                break
        return out

    def _search_batch(self, rows: np.ndarray, count: int):
        if self._graph is not None:
            found = self._graph.search(rows, count, threads=THREADS)
            return np.asarray(found.keys, dtype=np.int64), found.distances
        from usearch.index import search

        found = search(self._vectors, rows, min(count, self.count), "cos", exact=True,
                       threads=THREADS)
        return (np.asarray(found.keys, dtype=np.int64).reshape(len(rows), -1),
                np.asarray(found.distances).reshape(len(rows), -1))


_cache: dict[Path, tuple[tuple, SimilarityIndex]] = {}
_cache_lock = threading.Lock()


def open_latest(path: str | os.PathLike) -> SimilarityIndex:
    """This process's index for ``path``, reopened when a rebuild has replaced the file.

    Costs one ``stat`` per call; web processes call it per request, so a background rebuild is
    picked up by the next request of every process without restarting them.

    Raises:
        IndexFileError: the file is missing or unreadable.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise IndexFileError(
            f"The similarity index {path} is missing ({error}). Build it first.") from None
    signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(path)
        if cached is None or cached[0] != signature:
            # The old index is not closed: a request in another thread may still be using it;
            # it is unmapped when the last reference goes.
            cached = (signature, SimilarityIndex.open(path))
            _cache[path] = cached
        return cached[1]


def _checked_ids(ids, vectors) -> tuple[np.ndarray, np.ndarray | None]:
    """Ids as sorted unique int64, and the row order that sorts them (None: already sorted)."""
    ids = np.asarray(ids)
    shape = getattr(vectors, "shape", ())
    if (len(shape) != 2 or ids.shape != (shape[0],) or shape[1] == 0
            or not np.issubdtype(ids.dtype, np.integer) and len(ids)):
        raise EmbeddingFormatError(
            f"Build an index from one integer id per vector and a 2-D vector array; got ids "
            f"{ids.shape} ({ids.dtype}) and vectors {shape}.")
    ids = ids.astype(np.int64)
    order = None
    if len(ids) > 1 and np.any(ids[1:] < ids[:-1]):
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
    if len(ids) > 1 and np.any(ids[1:] == ids[:-1]):
        raise EmbeddingFormatError(
            "The same product id appears twice among the embeddings; keep one vector per product.")
    return ids, order


def _normalised_chunks(vectors, order):
    """(first row, unit float32 rows) in id order, a chunk at a time: a million 1280-dim vectors
    (e.g. a memory-mapped array) are never all held as float32 at once."""
    for start in range(0, len(vectors), BUILD_CHUNK):
        rows = slice(start, start + BUILD_CHUNK) if order is None else order[
            start:start + BUILD_CHUNK]
        yield start, l2_normalise(np.asarray(vectors[rows], dtype=np.float32))


def _id_array(values) -> np.ndarray:
    """Sorted unique int64 ids from any iterable of ids (an array is converted without a loop)."""
    if values is None:
        return np.empty(0, dtype=np.int64)
    if not isinstance(values, np.ndarray):
        values = np.fromiter((int(v) for v in values), dtype=np.int64)
    # Sort and drop repeats by hand: np.unique is ~20x slower here on a million int64 ids.
    ids = np.sort(values.astype(np.int64, copy=False))
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))] if len(ids) else ids


def _hnsw_write(data_file: Path, chunks, *, dims: int) -> None:
    from usearch.index import Index

    graph = Index(ndim=dims, metric="cos", dtype="f16", connectivity=HNSW_CONNECTIVITY,
                  expansion_add=HNSW_EXPANSION_ADD)
    for start, chunk in chunks:
        # Keys are row positions; ``ids`` maps them back to product ids.
        graph.add(np.arange(start, start + len(chunk), dtype=np.uint64), chunk, threads=THREADS)
    graph.save(str(data_file))


def _write_file(path: Path, scratch: Path, header: dict, ids: np.ndarray,
                data_file: Path) -> None:
    """Preamble, header, ids and the data section into ``scratch``, fsynced, then renamed."""
    # The offsets depend on the header's length and the header holds the offsets: reserve a
    # fixed width for them by formatting the numbers zero-padded.
    placeholder = {**header, "ids_offset": 0, "data_offset": 0, "data_size": 0}
    header_size = len(json.dumps(placeholder)) + 3 * 20
    ids_offset = _aligned(_PREAMBLE.size + header_size)
    data_offset = _aligned(ids_offset + ids.nbytes)
    full = json.dumps({**header, "ids_offset": ids_offset, "data_offset": data_offset,
                       "data_size": data_file.stat().st_size}).encode().ljust(header_size)
    with open(scratch, "wb") as out:
        out.write(_PREAMBLE.pack(_MAGIC, header_size) + full)
        out.write(b"\0" * (ids_offset - out.tell()))
        out.write(ids.astype("<i8").tobytes())
        out.write(b"\0" * (data_offset - out.tell()))
        with open(data_file, "rb") as data:
            shutil.copyfileobj(data, out, 16 * 2**20)
        out.flush()
        os.fsync(out.fileno())
    os.replace(scratch, path)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN
