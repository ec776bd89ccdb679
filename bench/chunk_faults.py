"""One classification chunk of 64 products against a misbehaving Appwrite: who gets a record?

    .venv/bin/python bench/chunk_faults.py [--products 64]

Starts the Appwrite emulator (tests/support/appwrite_emulator.py) with a bucket for images and
one for models, points a fresh SQLite site at it (``APPWRITE_*`` set before Django starts, so
images and the model file really live in the emulator), stores 64 product photos and the tiny
test model (tests/support/tiny_model.py; TensorFlow converts it once), then runs one job per
scenario through the chunk task code (``classification_chunk_run``, what a qcluster worker
runs) with a fault injected on one image, on every image, or on the model download. A
scenario whose fault outlasts the chunk is followed by what the scheduled stalled-job resume
does (``classification_jobs_resume_stalled``), up to its limit.

Printed per scenario: products classified, failed with a reason, left with neither; whether an
exception escaped the chunk task; the job's final status. The faults are the ones a proxy in
front of Appwrite (or Appwrite under load) produces; test settings: 1 s timeout, 2 retries.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGES, MODELS = "bench-images", "bench-models"
# Faults that outlast a chunk are followed by this many scheduled resume passes (the limit).
RESUME_PASSES = 4
BAD_JSON = {"status": 200, "body": b'{"message": "upstream ti', "content_type": "application/json"}
SCENARIOS = [
    ("one image: 502 without Content-Type", "one", {"status": 502, "json_body": False,
                                                     "omit_content_type": True}),
    ("one image: 200 labelled JSON, not JSON", "one", BAD_JSON),
    ("one image: truncated body", "one", {"truncate": 100}),
    ("one image: slower than the timeout", "one", {"delay": 1.5}),
    ("every image: 503 storm", "all", {"status": 503}),
    ("model: 200 labelled JSON, once", "model-once", BAD_JSON),
    ("model: 502 without Content-Type, always", "model", {"status": 502,
                                                          "omit_content_type": True}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=64)
    args = parser.parse_args()
    from tests.support.appwrite_emulator import AppwriteEmulator

    with AppwriteEmulator() as emu, tempfile.TemporaryDirectory() as tmp:
        emu.create_bucket(IMAGES)
        emu.create_bucket(MODELS)
        _setup_django(emu, Path(tmp))
        products, version = _catalog(args.products)
        rows = [_scenario(emu, label, target, fault, products, version)
                for label, target, fault in SCENARIOS]
    print(f"{args.products} products in one chunk; Appwrite emulator with 1 s timeout and 2 "
          "retries")
    print(f"{'scenario':<42}{'classified':>11}{'failed':>8}{'no reason':>10}"
          f"{'escaped':>28}{'job':>11}{'seconds':>9}")
    for label, done, failed, lost, escaped, status, seconds in rows:
        print(f"{label:<42}{done:>11}{failed:>8}{lost:>10}{escaped or '-':>28}{status:>11}"
              f"{seconds:>9.1f}")


def _setup_django(emu, tmp: Path) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "CATALOG_VAR_DIR": str(tmp),
        "APPWRITE_ENDPOINT": emu.endpoint, "APPWRITE_PROJECT_ID": emu.project_id,
        "APPWRITE_API_KEY": emu.api_key, "APPWRITE_BUCKET_ID": IMAGES,
        "APPWRITE_MODELS_BUCKET_ID": MODELS, "APPWRITE_TIMEOUT": "1", "APPWRITE_MAX_RETRIES": "2",
        "CLASSIFIER_AUTO_CLASSIFY": "0", "DJANGO_LOG_LEVEL": "CRITICAL",
    })
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _catalog(count: int):
    from django.core.files.base import ContentFile
    from PIL import Image

    from catalog.models import Category, Product
    from tests.support.model_versions import stored_model_version
    from tests.support.tiny_model import DEFAULT_LABELS, make_tiny_tflite, tiny_contract

    for slug in DEFAULT_LABELS:
        Category.objects.create(name=slug.title(), slug=slug)
    version = stored_model_version(make_tiny_tflite(), labels=DEFAULT_LABELS, number=1,
                                   contract=tiny_contract())
    products = []
    for number in range(count):
        buffer = io.BytesIO()
        colour = [(230, 20, 20), (20, 230, 20), (20, 20, 230)][number % 3]
        Image.new("RGB", (64, 48), colour).save(buffer, "JPEG", quality=90)
        product = Product.objects.create(sku=f"B-{number}", title=f"Bench {number}")
        product.image.save("photo.jpg", ContentFile(buffer.getvalue()))
        products.append(product)
    return products, version


def _scenario(emu, label, target, fault, products, version):
    from catalog.appwrite import file_id_for_name
    from classifier.models import ClassificationJob, PredictionRecord
    from classifier.services import classification_job_start, classification_jobs_resume_stalled

    emu.clear_faults()
    if target == "one":
        emu.inject("GET", rf"/files/{file_id_for_name(products[7].image.name)}/download$",
                   times=None, **fault)
    elif target == "all":
        emu.inject("GET", rf"/buckets/{IMAGES}/files/[^/]+/download$", times=None, **fault)
    else:
        emu.inject("GET", rf"/files/{file_id_for_name(version.file.name)}/download$",
                   times=3 if target == "model-once" else None, **fault)
    _forget_loaded_model()
    ids = [p.pk for p in products]
    job = classification_job_start(products=ids, enqueue=False)
    started = time.perf_counter()
    escaped = _chunk(job.pk, ids)
    for _ in range(RESUME_PASSES if target == "model" else 0):
        job.refresh_from_db()
        if job.finished_at is not None:
            break
        classification_jobs_resume_stalled(stalled_after=0)
        escaped = escaped or _chunk(job.pk, ids)
    seconds = time.perf_counter() - started
    emu.clear_faults()
    job = ClassificationJob.objects.get(pk=job.pk)
    records = PredictionRecord.objects.filter(job=job)
    done = records.exclude(outcome="failed").count()
    failed = records.filter(outcome="failed").exclude(error="").count()
    return (label, done, failed, len(ids) - done - failed, escaped, job.status, seconds)


def _chunk(job_id: int, ids: list[int]) -> str:
    """Run the chunk task code; the name of an exception that escaped it, else ''."""
    from classifier.services import classification_chunk_run

    try:
        classification_chunk_run(job_id=job_id, product_ids=ids)
    except Exception as exc:  # noqa: BLE001 - what escapes is what the bench measures
        return type(exc).__name__
    return ""


def _forget_loaded_model() -> None:
    from classifier import runtime

    runtime.clear_cache()


if __name__ == "__main__":
    main()
