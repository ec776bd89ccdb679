"""What embeddings cost the classification chunk, and similar-product queries with and without the
index file, on the embedded default (SQLite).

    .venv/bin/python bench/similar_products.py [--n 1000,5000,20000] [--queries 50]

(1) Chunk writes: one 64-product chunk's ``results_apply`` (what a chunk writes without
    embeddings: the baseline) beside ``product_embeddings_store`` (the added bulk upsert of 64
    float16 1,280-dim vectors), medians of 20 runs, and the chunk's in-memory inference time
    with the default model (EfficientNet-Lite0 224x224 from ``bench/duplicate_threshold.py``'s
    cache, when present) for scale.
(2) Per catalog size N: a full background rebuild (reading N embeddings from the database,
    writing the index file, the all-pairs near-duplicate scan), the rebuild after a job that
    re-embedded 64 products (index file again, duplicate scan of those 64 only), then
    ``similar_products`` p50/p95 over ``--queries`` products, through the index file and
    through the exact fallback (no index: the stored embeddings read from the database per
    request).

Vectors are synthetic (clustered, 1,280 dims); timings do not depend on their values. The
database lives in ``var/bench/similar-products/`` and is rebuilt per run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "var" / "bench" / "similar-products"
DIMS = 1280
CHUNK = 64
REPEATS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1000,5000,20000")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    shutil.rmtree(SITE, ignore_errors=True)
    SITE.mkdir(parents=True)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
                       "CATALOG_VAR_DIR": str(SITE), "CLASSIFIER_AUTO_CLASSIFY": "0",
                       "DATABASE_URL": f"sqlite:///{SITE / 'bench.sqlite3'}",
                       "SIMILARITY_INDEX_DIR": str(SITE / "index"),
                       # Measure the exact scan at every N (the setting's cutoff comes from it).
                       "SIMILARITY_EXACT_FALLBACK_MAX": str(10**9),
                       "DJANGO_LOG_LEVEL": "WARNING"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    version = _model_version()
    _chunk_table(version)
    print()
    print(f"{'N':>7} {'full rebuild s':>14} {'after a job s':>13} {'index p50 ms':>12} "
          f"{'p95':>6} {'exact p50 ms':>12} {'p95':>6}")
    for n in (int(v) for v in args.n.split(",")):
        _catalog_rows(n, version)
        print(_size_row(n, args.queries), flush=True)


def _model_version():
    from catalog.models import Category
    from classifier.models import ModelVersion

    Category.objects.create(name="Bench", slug="bench")
    return ModelVersion.objects.create(
        number=1, labels=["bench"], input_contract={"height": 224, "width": 224},
        architecture="efficientnet_lite0", checksum="0" * 64, is_active=True,
        embedding_backbone="bench-backbone", embedding_dim=DIMS)


def _vectors(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.gamma(0.5, 1.0, (max(1, count // 4), DIMS)).astype(np.float32)
    picked = centres[rng.integers(0, len(centres), count)]
    return np.maximum(picked + rng.normal(0, 0.3, (count, DIMS)).astype(np.float32), 0) + 1e-3


def _chunk_table(version) -> None:
    from django.db import transaction

    from catalog.models import Product
    from classifier.inference import Prediction
    from classifier.services.embeddings import product_embeddings_store
    from classifier.services.results import ItemResult, results_apply

    products = Product.objects.bulk_create([
        Product(sku=f"chunk-{i}", title=f"Chunk {i}", image=f"products/chunk/{i}.jpg")
        for i in range(CHUNK)])
    vectors = _vectors(CHUNK, 0)
    results = [ItemResult(product_id=p.pk, prediction=Prediction(
        "bench", 0.9, [("bench", 0.9)], embedding=v)) for p, v in zip(products, vectors)]
    apply_s, store_s = [], []
    for _ in range(REPEATS):
        with transaction.atomic():
            started = time.perf_counter()
            results_apply(results=results, model_version_id=version.pk, job_id=None)
            applied = time.perf_counter()
            product_embeddings_store(results=results, products=products,
                                     model_version_id=version.pk)
            stored = time.perf_counter()
        apply_s.append(applied - started)
        store_s.append(stored - applied)
    infer = _chunk_inference_seconds()
    apply_ms, store_ms = statistics.median(apply_s) * 1e3, statistics.median(store_s) * 1e3
    print(f"One chunk of {CHUNK} products, medians of {REPEATS}:")
    print(f"  results_apply (baseline write)       {apply_ms:8.1f} ms")
    print(f"  product_embeddings_store (added)     {store_ms:8.1f} ms")
    if infer is not None:
        total = infer * 1e3 + apply_ms
        print(f"  inference of {CHUNK} decoded images       {infer * 1e3:8.1f} ms "
              "(EfficientNet-Lite0 224, in memory)")
        print(f"  added / (inference + baseline write) {store_ms / total:8.1%}")


def _chunk_inference_seconds() -> float | None:
    """One batched predict of 64 decoded images with the default model, if it is cached."""
    import json

    model_dir = ROOT / "var" / "bench" / "duplicates"
    if not (model_dir / "model.tflite").exists():
        return None
    from classifier.contract import InputContract
    from classifier.inference import LiteRTClassifier
    from classifier.runtime import INVOKE_BATCH

    meta = json.loads((model_dir / "meta.json").read_text())
    model = LiteRTClassifier((model_dir / "model.tflite").read_bytes(), labels=meta["labels"],
                             contract=InputContract.from_dict(meta["contract"]), num_threads=2,
                             max_batch=INVOKE_BATCH)
    batch = np.random.default_rng(0).integers(0, 256, (CHUNK, *model.contract.size, 3),
                                              dtype=np.uint8)
    model.predict(batch)  # warm-up: the first invoke allocates
    started = time.perf_counter()
    model.predict(batch)
    return time.perf_counter() - started


def _catalog_rows(n: int, version) -> None:
    """Grow the catalog to ``n`` published products with stored embeddings."""
    from catalog.models import Product
    from classifier.models import ProductEmbedding
    from classifier.similarity.encoding import embedding_encode

    have = ProductEmbedding.objects.count()
    if n <= have:
        return
    vectors = _vectors(n - have, n)
    for start in range(0, n - have, 5000):
        block = vectors[start:start + 5000]
        products = Product.objects.bulk_create([
            Product(sku=f"p-{have + start + i}", title="Bench", is_published=True,
                    image=f"products/p/{have + start + i}.jpg") for i in range(len(block))])
        ProductEmbedding.objects.bulk_create([
            ProductEmbedding(product=p, backbone="bench-backbone", dim=DIMS,
                             vector=embedding_encode(v), model_version=version,
                             image_name=p.image.name) for p, v in zip(products, block)])


def _size_row(n: int, queries: int) -> str:
    from catalog.models import Product
    from classifier.services import similar_products, similarity_index, similarity_index_refresh
    from classifier.services.similarity_index import index_path

    started = time.perf_counter()
    similarity_index_refresh(force=True)
    rebuild = time.perf_counter() - started
    _touch_chunk()  # a classification job re-embedded 64 products
    similarity_index.REFRESH_DUTY = 0  # time the rebuild itself, not its rationing
    started = time.perf_counter()
    outcome = similarity_index_refresh()
    after_job = time.perf_counter() - started
    assert outcome.status == "built", outcome
    sample = list(Product.objects.filter(embedding__isnull=False).order_by("?")[:queries])
    with_index = _timed(lambda p: similar_products(product=p, limit=10), sample)
    index_path("bench-backbone").unlink()  # the exact fallback answers from the database
    exact = _timed(lambda p: similar_products(product=p, limit=10), sample)
    return (f"{n:>7,} {rebuild:>14.1f} {after_job:>13.1f} {with_index[0]:>12.1f} "
            f"{with_index[1]:>6.1f} {exact[0]:>12.1f} {exact[1]:>6.1f}")


def _touch_chunk() -> None:
    from django.utils import timezone

    from classifier.models import ProductEmbedding

    ids = list(ProductEmbedding.objects.order_by("?").values_list("pk", flat=True)[:CHUNK])
    ProductEmbedding.objects.filter(pk__in=ids).update(updated_at=timezone.now())


def _timed(query, products) -> tuple[float, float]:
    query(products[0])  # warm-up (maps the index file, fills caches)
    times = []
    for product in products:
        started = time.perf_counter()
        query(product)
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


if __name__ == "__main__":
    main()
