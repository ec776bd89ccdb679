"""Similar-product search at scale: exact NumPy vs approximate-nearest-neighbour libraries.

    .venv/bin/python bench/similar_index.py [--n 100000,1000000] [--quick] [--queries 1000]
                                            [--methods exact-f32,usearch-f16,...] [--dims 1280,256]

Synthetic embeddings shaped like EfficientNet-Lite0's pooled backbone output (see ``_generate``):
non-negative, sparse-ish, clustered (a few thousand product clusters inside 40 categories),
L2-normalised. Per N the data (float32), 1,000 held-out queries, the exact float32 top-10 of each
query (the ground truth) and an uncentred PCA to 256 dims fitted on a 20,000-vector sample are
cached under ``var/bench/similar/<N>/``; delete that folder to rebuild them.

Each method runs in two fresh subprocesses, one after the other, so only one index is in memory
at a time: *build* (index from the float32 file, saved to disk; build time and peak RSS), then
*serve* (opens the saved file the way a web process would: memory-mapped where the library can,
then single queries, k=10, one at a time; RSS delta = VmRSS after the queries minus before the
open). Recall@10 is against the exact float32 search on the full 1280 dims, so a 256-dim row's
recall includes what the projection loses. HNSW rows are served at two ``ef`` (search breadth).
Exact rows time only the first ``EXACT_TIMED_QUERIES`` queries (an exact query at 1M is slow)
and compute recall on all queries with a batched product.

The ``module`` method is ``classifier.similarity.index`` itself (the approach chosen from these
numbers); with it, two processes then map its file at once and report Rss and Pss, to show that
web processes share one copy through the page cache.

``--quick`` runs N=10,000 only (a minute or two); the default sizes take ~an hour at 1M and up
to ~12 GB of RAM (page cache included) and ~25 GB of disk, freed as each index is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "var" / "bench" / "similar"
FULL_DIMS = 1280  # EfficientNet-Lite0's pooled feature width
REDUCED_DIMS = 256
K = 10
# The machine's two cores: exact search lets BLAS use both; an HNSW query is one thread (a web
# process answers one request per thread), builds use both.
CORES = 2
# An exact query reads the whole matrix (5 GB at 1M x 1280 float32): time this many of them.
EXACT_TIMED_QUERIES = 100
# Rows per chunk of an exact search: 16k x 1280 float32 = 80 MB of scratch at most.
EXACT_CHUNK_ROWS = 16384
PCA_SAMPLE = 20000
# HNSW graph degree and build breadth: the libraries' common defaults for high-recall setups.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = (64, 128)
# Candidates the reduced-dim graph fetches for re-scoring at full dims: at 100k, the exact
# 256-dim top-30 already held every true top-10.
RERANK_CANDIDATES = 50
GENERATE_CHUNK = 50000
N_CATEGORIES = 40
CATEGORY_RANK = 24  # directions along which products of a category vary (a "style" subspace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="100000,1000000", help="catalog sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="N=10,000 only")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dims", default=f"{FULL_DIMS},{REDUCED_DIMS}")
    parser.add_argument("--methods", default=",".join(METHODS), help="subset of the methods")
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # internal: one measurement step
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # classifier.similarity, for the "module" rows
    if args.mode:
        result = STEPS[args.mode](args)
        result.setdefault("peak_rss_mb", _status_mb("VmHWM"))
        print("RESULT " + json.dumps(result))
        return
    sizes = [10000] if args.quick else [int(v) for v in args.n.split(",")]
    dims = [int(v) for v in args.dims.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    missing = sorted({m for m in methods if m not in METHODS})
    if missing:
        sys.exit(f"unknown methods {missing}; choose from {sorted(METHODS)}")
    for n in sizes:
        stats = _run(["--mode", "prepare", "--size", str(n), "--queries", str(args.queries)])
        codecs = _run(["--mode", "codecs", "--size", str(n)])["rows"]
        rows, shared = [], []
        for dim in dims:
            for method in methods:
                if METHODS[method].reduced_only and dim == FULL_DIMS:
                    continue
                if not METHODS[method].available():
                    rows.append((method, dim, {"skipped": f"{METHODS[method].package} missing"}))
                    continue
                print(f"N={n:,} {method} d={dim}...", file=sys.stderr, flush=True)
                common = ["--method", method, "--dim", str(dim), "--size", str(n)]
                built = _run(["--mode", "build", *common])
                for served in _run(["--mode", "serve", *common])["runs"]:
                    rows.append((method, dim, {**built, **served}))
                if method == "module" and dim == FULL_DIMS:
                    shared = _shared(n, dim)
                shutil.rmtree(_index_path(n, method, dim))
        stats["load"] = os.getloadavg()[1]  # the 5-minute load: other work on the shared cores
        _print_table(n, stats, rows, codecs, shared)


# --- Synthetic embeddings ----------------------------------------------------------------------

def _generate(rng_seed: int, count: int, model: dict) -> np.ndarray:
    """``count`` embeddings from the cluster model: like pooled ReLU6 features, then L2-normalised.

    A point is its cluster centre, plus a move inside its category's low-rank "style" subspace
    (pose, colour, background of the photo), plus small isotropic noise, clipped at 0 as a ReLU
    would and L2-normalised. Centres are the category mean scaled per feature by a log-normal
    factor (product types differ in which features fire), and means are Gamma(0.5) draws scaled
    by a per-feature activity, so features are sparse and unevenly active as in real backbones.
    Cluster sizes follow a Zipf-like law (a few big product families, many small ones).
    """
    rng = np.random.default_rng(rng_seed)
    weights = model["cluster_weights"]
    cluster = rng.choice(len(weights), size=count, p=weights)
    category = model["cluster_category"][cluster]
    style = rng.standard_normal((count, CATEGORY_RANK)).astype(np.float32)
    out = np.empty((count, FULL_DIMS), dtype=np.float32)
    for cat in np.unique(category):
        rows = np.flatnonzero(category == cat)
        out[rows] = style[rows] @ model["category_bases"][cat]
    out += model["centres"][cluster]
    out += rng.standard_normal((count, FULL_DIMS), dtype=np.float32) * model["noise"]
    np.maximum(out, 0, out=out)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _cluster_model(n: int) -> dict:
    rng = np.random.default_rng(1280)
    n_clusters = int(np.clip(n // 250, 40, 4000))  # 4,000 clusters at 1M, 400 at 100k
    activity = rng.lognormal(0.0, 0.8, FULL_DIMS).astype(np.float32)
    means = rng.gamma(0.5, 1.0, (N_CATEGORIES, FULL_DIMS)).astype(np.float32) * activity
    bases = (rng.standard_normal((N_CATEGORIES, CATEGORY_RANK, FULL_DIMS)).astype(np.float32)
             * activity * 0.12)
    cluster_category = rng.integers(N_CATEGORIES, size=n_clusters)
    centres = (means[cluster_category]
               * rng.lognormal(0.0, 0.7, (n_clusters, FULL_DIMS)).astype(np.float32))
    weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.6
    return {"centres": centres, "category_bases": bases, "cluster_category": cluster_category,
            "cluster_weights": rng.permutation(weights / weights.sum()),
            "noise": (activity * 0.12).astype(np.float32)}


def _prepare(args) -> dict:
    """Data, queries, ground truth and the PCA, cached per N (generated in chunks)."""
    folder = BENCH_DIR / str(args.size)
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / f"data_{FULL_DIMS}.npy"
    if not (folder / "stats.json").exists():
        model = _cluster_model(args.size)
        data = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.float32,
                                         shape=(args.size, FULL_DIMS))
        for chunk, start in enumerate(range(0, args.size, GENERATE_CHUNK)):
            stop = min(start + GENERATE_CHUNK, args.size)
            data[start:stop] = _generate(10_000 + chunk, stop - start, model)
        data.flush()
        queries = _generate(7, args.queries, model)
        np.save(folder / f"queries_{FULL_DIMS}.npy", queries)
        truth, scores = _exact_topk(queries, data, K)
        np.save(folder / "truth.npy", truth)
        sample = data[np.sort(np.random.default_rng(3).choice(
            args.size, min(PCA_SAMPLE, args.size), replace=False))]
        # Uncentred PCA (top eigenvectors of E[x x^T]): dot products, hence cosines, are kept.
        _, vectors = np.linalg.eigh(sample.T.astype(np.float64) @ sample / len(sample))
        components = vectors[:, ::-1][:, :REDUCED_DIMS].astype(np.float32)
        np.save(folder / "pca.npy", components)
        kept = float(np.mean(np.sum((sample @ components) ** 2, axis=1)))
        reduced = np.lib.format.open_memmap(folder / f"data_{REDUCED_DIMS}.npy", mode="w+",
                                            dtype=np.float32, shape=(args.size, REDUCED_DIMS))
        for start in range(0, args.size, GENERATE_CHUNK):
            reduced[start:start + GENERATE_CHUNK] = _project(data[start:start + GENERATE_CHUNK],
                                                             components)
        reduced.flush()
        np.save(folder / f"queries_{REDUCED_DIMS}.npy", _project(queries, components))
        random_pairs = np.random.default_rng(4).integers(args.size, size=(2000, 2))
        stats = {"n": args.size, "clusters": len(model["centres"]), "queries": args.queries,
                 "zeros": float(np.mean(data[:10000] == 0)),
                 "cos_random": float(np.mean(np.sum(data[random_pairs[:, 0]]
                                                    * data[random_pairs[:, 1]], axis=1))),
                 "cos_nn1": float(scores[:, 0].mean()), "cos_nn10": float(scores[:, -1].mean()),
                 "pca_energy": kept}
        (folder / "stats.json").write_text(json.dumps(stats))
    return json.loads((folder / "stats.json").read_text())


def _project(vectors: np.ndarray, components: np.ndarray) -> np.ndarray:
    reduced = np.asarray(vectors, dtype=np.float32) @ components
    return reduced / np.linalg.norm(reduced, axis=1, keepdims=True)


def _exact_topk(queries: np.ndarray, data: np.ndarray, k: int,
                transform=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of every query by dot product, a chunk of data rows (``transform``-ed) at a
    time."""
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    best = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(data), 4 * EXACT_CHUNK_ROWS):
        chunk = np.asarray(data[start:start + 4 * EXACT_CHUNK_ROWS], np.float32)
        scores = queries @ (transform(chunk) if transform else chunk).T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best = np.concatenate([best, np.take_along_axis(scores, top, 1)], axis=1)
        best_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-best, axis=1)[:, :k]
        best, best_ids = np.take_along_axis(best, keep, 1), np.take_along_axis(best_ids, keep, 1)
    return best_ids, best


# --- Methods -----------------------------------------------------------------------------------

class _Method:
    """One way to index and search; ``efs`` are the search breadths served (``None``: exact)."""

    package = ""
    efs: tuple = (None,)
    note = ""
    reduced_only = False

    def queries(self, folder: Path, dim: int):
        return np.load(folder / f"queries_{dim}.npy")

    def available(self) -> bool:
        if not self.package:
            return True
        try:
            __import__(self.package)
        except ImportError:
            return False
        return True


class _Exact(_Method):
    """Exact search over an ``.npy`` opened with ``mmap_mode="r"`` (shared page cache).

    float32: one NumPy/BLAS matrix-vector product over the mapped file. float16: usearch's SIMD
    brute force (``usearch.index.search(..., exact=True)``) on the mapped float16 matrix, since
    NumPy has no float16 BLAS (upcasting 100k x 1280 float16 takes ~2 s per query here); by
    cosine, which re-normalises the rounded rows (inner product on them loses ~0.5% recall).
    """

    def __init__(self, storage: str, package: str = ""):
        self.storage = storage
        self.package = package
        self.note = f"{storage}, mmap" + (", usearch SIMD" if package else ", NumPy BLAS")

    def build(self, data, folder: Path, dim: int) -> None:
        out = np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=self.storage,
                                        shape=data.shape)
        for start in range(0, len(data), GENERATE_CHUNK):
            out[start:start + GENERATE_CHUNK] = data[start:start + GENERATE_CHUNK]
        out.flush()

    def open(self, folder: Path):
        return np.load(folder / "vectors.npy", mmap_mode="r")

    def search(self, index, query: np.ndarray, k: int, ef) -> np.ndarray:
        if self.storage == "float32":
            return _top_k(index @ query, k)
        from usearch.index import search

        return search(index, query.astype(index.dtype), k, "cos", exact=True, threads=CORES).keys

    def search_many(self, index, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """All queries at once (for recall only: a batched product is much faster)."""
        if self.storage == "float32":
            return list(_exact_topk(queries, index, k)[0])
        from usearch.index import search

        return list(search(index, queries.astype(index.dtype), k, "cos", exact=True,
                           threads=CORES).keys)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


class _USearch(_Method):
    """usearch HNSW, vectors stored inside the index as float16 or int8, served with view=True."""

    package = "usearch"
    efs = HNSW_EF_SEARCH

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.note = f"HNSW M={HNSW_M}, {dtype}, view (mmap)"

    def build(self, data, folder: Path, dim: int) -> None:
        from usearch.index import Index

        index = Index(ndim=dim, metric="cos", dtype=self.dtype, connectivity=HNSW_M,
                      expansion_add=HNSW_EF_CONSTRUCTION)
        for start in range(0, len(data), GENERATE_CHUNK):
            chunk = np.asarray(data[start:start + GENERATE_CHUNK])
            index.add(np.arange(start, start + len(chunk)), chunk, threads=CORES)
        index.save(str(folder / "index.usearch"))

    def open(self, folder: Path):
        from usearch.index import Index

        return Index.restore(str(folder / "index.usearch"), view=True)

    def search(self, index, query: np.ndarray, k: int, ef) -> np.ndarray:
        if index.expansion_search != ef:
            index.expansion_search = ef
        return index.search(query, k, threads=1).keys


class _Hnswlib(_Method):
    """hnswlib HNSW (float32 vectors inside the graph), loaded into memory (no mmap mode)."""

    package = "hnswlib"
    efs = HNSW_EF_SEARCH
    note = f"HNSW M={HNSW_M}, float32, load"

    def build(self, data, folder: Path, dim: int) -> None:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=len(data), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
        for start in range(0, len(data), GENERATE_CHUNK):
            chunk = np.asarray(data[start:start + GENERATE_CHUNK])
            index.add_items(chunk, np.arange(start, start + len(chunk)), num_threads=CORES)
        index.save_index(str(folder / "index.hnsw"))

    def open(self, folder: Path):
        import hnswlib

        index = hnswlib.Index(space="ip", dim=int((folder / "dim").read_text()))
        index.load_index(str(folder / "index.hnsw"))
        index.set_num_threads(1)
        return index

    def search(self, index, query: np.ndarray, k: int, ef) -> np.ndarray:
        index.set_ef(ef)
        return index.knn_query(query, k=k)[0][0]


class _FaissHNSW(_Method):
    """faiss IndexHNSWFlat (float32 vectors), loaded into memory."""

    package = "faiss"
    efs = HNSW_EF_SEARCH
    note = f"HNSW M={HNSW_M}, float32, load"

    def build(self, data, folder: Path, dim: int) -> None:
        import faiss

        faiss.omp_set_num_threads(CORES)
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        for start in range(0, len(data), GENERATE_CHUNK):
            index.add(np.ascontiguousarray(data[start:start + GENERATE_CHUNK]))
        faiss.write_index(index, str(folder / "index.faiss"))

    def open(self, folder: Path):
        import faiss

        faiss.omp_set_num_threads(1)
        return faiss.read_index(str(folder / "index.faiss"))

    def search(self, index, query: np.ndarray, k: int, ef) -> np.ndarray:
        index.hnsw.efSearch = ef
        return index.search(query[None], k)[1][0]


class _Rerank(_Method):
    """The 10M design: HNSW over the PCA-reduced vectors fetches ``RERANK_CANDIDATES``, which
    are re-scored with the full float16 vectors from a memory-mapped store (the stored
    embeddings). Runs at reduced dims only; its file size includes the full-dim store."""

    package = "usearch"
    efs = HNSW_EF_SEARCH
    reduced_only = True
    note = f"HNSW f16 top-{RERANK_CANDIDATES} + re-rank"

    def build(self, data, folder: Path, dim: int) -> None:
        _USearch("f16").build(data, folder, dim)
        _Exact("float16").build(np.load(folder.parents[1] / f"data_{FULL_DIMS}.npy",
                                        mmap_mode="r"), folder, FULL_DIMS)

    def open(self, folder: Path):
        return _USearch("f16").open(folder), _Exact("float16").open(folder)

    def queries(self, folder: Path, dim: int):
        return list(zip(np.load(folder / f"queries_{dim}.npy"),
                        np.load(folder / f"queries_{FULL_DIMS}.npy")))

    def search(self, index, query, k: int, ef) -> np.ndarray:
        graph, full = index
        reduced_query, full_query = query
        candidates = np.sort(_USearch("f16").search(graph, reduced_query, RERANK_CANDIDATES, ef))
        scores = full[candidates].astype(np.float32) @ full_query
        return candidates[np.argsort(-scores)[:k]]


class _Module(_Method):
    """``classifier.similarity.index.SimilarityIndex`` as the site uses it: kind chosen by N
    (exact float16 scan up to ``EXACT_MAX_COUNT``, else usearch HNSW float16), one mapped file."""

    package = "usearch"
    efs = HNSW_EF_SEARCH  # an exact-kind index ignores it

    @property
    def note(self) -> str:
        from classifier.similarity.index import EXACT_MAX_COUNT

        return f"exact <= {EXACT_MAX_COUNT:,} < HNSW, mmap"

    def build(self, data, folder: Path, dim: int) -> None:
        from classifier.similarity.index import SimilarityIndex

        SimilarityIndex.build(folder / "index.sim", ids=np.arange(len(data)), vectors=data,
                              backbone="bench")

    def open(self, folder: Path):
        from classifier.similarity.index import SimilarityIndex

        return SimilarityIndex.open(folder / "index.sim")

    def search(self, index, query: np.ndarray, k: int, ef) -> np.ndarray:
        if index.kind == "hnsw" and ef is not None and index._graph.expansion_search != ef:
            index._graph.expansion_search = ef  # the module's default is HNSW_EXPANSION_SEARCH
        return np.array([n.id for n in index.query(query, backbone="bench", k=k)])


METHODS = {
    "exact-f32": _Exact("float32"),
    "exact-f16": _Exact("float16", package="usearch"),
    "usearch-f16": _USearch("f16"),
    "usearch-i8": _USearch("i8"),
    "hnswlib": _Hnswlib(),
    "faiss-hnsw": _FaissHNSW(),
    "module": _Module(),
    "hnsw-rerank": _Rerank(),
}


# --- Storage codecs ----------------------------------------------------------------------------

def _codecs(args) -> dict:
    """Recall@10 of exact search over embeddings that went through the storage encoding
    (``classifier.similarity.encoding``), against exact float32: the recall cost of the codec."""
    from classifier.similarity.encoding import (
        CODEC_FLOAT16,
        CODEC_INT8,
        embedding_decode,
        embedding_encode,
    )

    folder = BENCH_DIR / str(args.size)
    truth = np.load(folder / "truth.npy")
    rows = []
    for dim in (FULL_DIMS, REDUCED_DIMS):
        data = np.load(folder / f"data_{dim}.npy", mmap_mode="r")
        queries = np.load(folder / f"queries_{dim}.npy")
        for codec in (CODEC_FLOAT16, CODEC_INT8):
            size = len(embedding_encode(data[0], codec=codec))

            def round_trip(chunk, codec=codec):
                return np.stack([embedding_decode(embedding_encode(v, codec=codec))
                                 for v in chunk])

            found, scores = _exact_topk(queries, data, K, round_trip)
            exact = np.sum(queries * np.asarray(data[found[:, 0]]), axis=1)
            recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
            rows.append({"codec": codec, "dims": dim, "bytes": size, "recall": float(recall),
                         "score_error": float(np.max(np.abs(scores[:, 0] - exact)))})
    return {"rows": rows}


# --- Subprocess steps --------------------------------------------------------------------------

def _index_path(n: int, method: str, dim: int) -> Path:
    return BENCH_DIR / str(n) / "index" / f"{method}-{dim}"


def _build(args) -> dict:
    folder = _index_path(args.size, args.method, args.dim)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / "dim").write_text(str(args.dim))
    data = np.load(BENCH_DIR / str(args.size) / f"data_{args.dim}.npy", mmap_mode="r")
    start = time.perf_counter()
    METHODS[args.method].build(data, folder, args.dim)
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in folder.iterdir())
    return {"build_s": seconds, "file_mb": size / 2**20, "build_peak_mb": _status_mb("VmHWM")}


def _serve(args) -> dict:
    """Open the saved index as a web process would, then time single queries and recall@10."""
    method = METHODS[args.method]
    folder = BENCH_DIR / str(args.size)
    queries = method.queries(folder, args.dim)
    truth = np.load(folder / "truth.npy")
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    index = method.open(_index_path(args.size, args.method, args.dim))
    open_s = time.perf_counter() - start
    runs = []
    efs = (None,) if getattr(index, "kind", "") == "exact" else method.efs  # module, small N
    for ef in efs:
        exact = isinstance(method, _Exact)
        timed = min(EXACT_TIMED_QUERIES, len(queries)) if exact else len(queries)
        method.search(index, queries[0], K, ef)  # warm-up: first touch of a mapped file
        found, latencies = [], []
        for query in queries[:timed]:
            start = time.perf_counter()
            found.append(method.search(index, query, K, ef))
            latencies.append(time.perf_counter() - start)
        if exact:  # recall of an exact row on every query, batched
            found = method.search_many(index, queries, K)
        recall = np.mean([len(set(map(int, f)) & set(map(int, t))) / K
                          for f, t in zip(found, truth)])
        latency_ms = 1000 * np.asarray(latencies)
        runs.append({"ef": ef, "open_s": open_s, "p50_ms": float(np.percentile(latency_ms, 50)),
                     "p99_ms": float(np.percentile(latency_ms, 99)), "timed": timed,
                     "recall": float(recall), "rss_delta_mb": _status_mb("VmRSS") - before})
    return {"runs": runs}


def _hold(args) -> dict:
    """One of two web-like processes mapping the same module index (see ``_shared``)."""
    method = METHODS["module"]
    queries = np.load(BENCH_DIR / str(args.size) / f"queries_{args.dim}.npy")
    index = method.open(_index_path(args.size, "module", args.dim))
    for query in queries:
        method.search(index, query, K, None)  # at the module's default ef
    # Touch every page of the file, as a long-running process eventually does.
    touched = int(np.frombuffer(index._mapped, dtype=np.uint8)[::4096].sum())
    print("READY", flush=True)
    sys.stdin.readline()  # both processes hold their mapping while they are measured
    return {**_smaps_mb(index.path), "touched": touched}


def _smaps_mb(path: Path) -> dict:
    """Rss and Pss (shared pages split between the processes mapping them), MB: the whole
    process and the mappings of ``path`` alone."""
    out = {"Rss": 0.0, "Pss": 0.0, "file_Rss": 0.0, "file_Pss": 0.0}
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0]:  # a mapping's first line: "start-end perms offset dev inode path"
            inside = line.endswith(str(path))
        elif fields[0] in ("Rss:", "Pss:"):
            name = fields[0].rstrip(":")
            out[name] += int(fields[1]) / 1024
            if inside:
                out["file_" + name] += int(fields[1]) / 1024
    return out


def _shared(n: int, dim: int) -> list[dict]:
    """Two processes map the built module index at once; their Pss shows one shared copy."""
    common = ["--method", "module", "--dim", str(dim), "--size", str(n)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": str(CORES)}
    procs = [subprocess.Popen([sys.executable, __file__, "--mode", "hold", *common], cwd=ROOT,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        if proc.stdout.readline().strip() != "READY":
            sys.exit("a shared-index process failed")
    for proc in procs:  # both measure while both still map the file
        proc.stdin.write("go\n")
        proc.stdin.close()
    outputs = [proc.stdout.read() for proc in procs]
    for proc in procs:
        proc.wait()
    return [json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
            for out in outputs]


def _status_mb(field: str) -> float:
    """A /proc/self/status size (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


STEPS = {"prepare": _prepare, "codecs": _codecs, "build": _build, "serve": _serve,
         "hold": _hold}


# --- Orchestration -----------------------------------------------------------------------------

def _run(extra: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(CORES), "OPENBLAS_NUM_THREADS": str(CORES),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench step {extra} failed:\n{proc.stderr[-4000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _print_table(n: int, stats: dict, rows, codecs, shared) -> None:
    print(f"\nSimilar-product search, N={n:,} synthetic embeddings "
          f"({stats['clusters']:,} clusters, {stats['zeros']:.0%} zeros; "
          f"mean cosine random pair {stats['cos_random']:.2f}, "
          f"1st NN {stats['cos_nn1']:.2f}, 10th NN {stats['cos_nn10']:.2f}), "
          f"{stats['queries']} queries, k={K}, {os.cpu_count()} cores "
          f"(5-min load average at the end: {stats['load']:.1f})")
    print(f"PCA to {REDUCED_DIMS} dims keeps {stats['pca_energy']:.1%} of the energy; recall is "
          f"against exact float32 at {FULL_DIMS} dims. RSS delta: serving process after open + "
          "queries (mapped file pages included).")
    print(f"{'method':<12} {'dims':>5} {'storage':<28} {'ef':>4} {'build s':>8} {'file MB':>8} "
          f"{'RSS MB':>7} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9} {'p99 vs exact':>12}")
    baseline = next((r["p99_ms"] for m, d, r in rows
                     if m == "exact-f32" and d == FULL_DIMS and "p99_ms" in r), None)
    for method, dim, r in rows:
        if "skipped" in r:
            print(f"{method:<12} {dim:>5} skipped: {r['skipped']}")
            continue
        speed = f"{baseline / r['p99_ms']:>11.1f}x" if baseline else f"{'':>12}"
        ef = "" if r["ef"] in (None, "default") else str(r["ef"])
        print(f"{method:<12} {dim:>5} {METHODS[method].note:<28} {ef:>4} {r['build_s']:>8.1f} "
              f"{r['file_mb']:>8.0f} {r['rss_delta_mb']:>7.0f} {r['p50_ms']:>7.2f} "
              f"{r['p99_ms']:>7.2f} {r['recall']:>9.3f} {speed}")
    print(f"Exact rows time {EXACT_TIMED_QUERIES} queries (recall on all); HNSW rows time all. "
          "Baseline: exact-f32 at full dims.")
    print("\nStorage codec (embedding_encode -> embedding_decode), exact search on the decoded "
          "vectors:")
    print(f"{'codec':<6} {'dims':>5} {'bytes/vector':>12} {'recall@10':>9} "
          f"{'max top-1 score error':>21}")
    for r in codecs:
        print(f"{r['codec']:<6} {r['dims']:>5} {r['bytes']:>12} {r['recall']:>9.3f} "
              f"{r['score_error']:>21.5f}")
    if shared:
        print(f"\nTwo processes map the module's index file ({FULL_DIMS} dims) at once, each has "
              "queried and touched every page:")
        for number, r in enumerate(shared, 1):
            print(f"process {number}: index file mapping Rss {r['file_Rss']:.0f} MB, Pss "
                  f"{r['file_Pss']:.0f} MB; whole process Rss {r['Rss']:.0f} MB, Pss "
                  f"{r['Pss']:.0f} MB")


if __name__ == "__main__":
    main()
