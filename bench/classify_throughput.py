"""Classification throughput: the tutorial's way vs the project's task code vs the ceiling.

    .venv/bin/python bench/classify_throughput.py [--n 1000] [--sizes 1600x1200,4000x3000]
                                                  [--storage local|appwrite|both]
                                                  [--models cnn,default]

(a) tutorial: per image, read the whole file, ``Image.open``, ``resize``, one interpreter call,
    softmax. (b) project: the chunk task code end to end (fetch from storage with a thread pool,
    shared preprocessing, one batched invoke per chunk, bulk writes to the database), run by
    ``classification_job_run_sync`` in a fresh process. (c) ceiling: shared preprocessing and
    batched inference on bytes already in memory, no storage and no database.

Each mode runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own; TensorFlow is
imported only by the one-off training subprocesses and the RSS baseline. Photos (smooth
gradients, shapes and sensor-like noise, JPEG quality 90) and the models are cached under
``var/bench/``; delete that folder to rebuild them. Two models, each trained by
``training.pipeline.run_training`` on a small generated set: ``cnn``, the tutorial's network at
180x180 (the baseline rows), and ``default``, what ``train_classifier`` trains with no options
(EfficientNet-Lite0 at 224x224 with its measured quantisation, logits and embedding outputs).
Each model's (b) rows are compared with the same model's ceiling (c).

``--storage appwrite`` (or ``both``, the default) also runs mode (b) against Appwrite Storage:
the bench process starts the in-memory emulator (tests/support/appwrite_emulator.py, a thread
server the qcluster reaches over loopback), a setup step with ``APPWRITE_*`` set saves the photos
and the model through ``AppwriteStorage`` itself (so names map to file ids exactly as in
production) into a separate bench database, and mode (b) runs once fetching originals and once
with ``APPWRITE_CLASSIFY_FROM_PREVIEW=1`` (a server-side JPEG preview at the fetch size). The
emulator renders previews with Pillow on the same cores as the workers, so the preview row is a
lower bound on what a real Appwrite server (on its own machine) would give.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "var" / "bench"
# Which model a step measures: the orchestrator sets BENCH_MODEL for each subprocess.
MODEL_NAME = os.environ.get("BENCH_MODEL", "cnn")
MODEL_DIR = BENCH_DIR / ("model" if MODEL_NAME == "cnn" else f"model-{MODEL_NAME}")
SITE_DIR = BENCH_DIR / "site"
MEDIA_DIR = SITE_DIR / "media"
PHOTO_SUBDIR = "bench-photos"

# The tutorial's model: its CNN at its input size, trained just enough to give real predictions.
MODEL_SIZE = (180, 180)
MODELS = ("cnn", "default")
TRAIN_CLASSES = ("circles", "squares", "stripes")
TRAIN_PER_CLASS = 24
TRAIN_EPOCHS = 2
JPEG_QUALITY = 90
# Distinct photos generated per size; files beyond this repeat them (the page cache sees the same
# bytes either way, and generating 1,000 12-megapixel photos would take longer than the bench).
DISTINCT_PHOTOS = 48
CEILING_BATCH = 64
# A qcluster is ready within seconds; past this the bench starts timing anyway (and says so in
# the cluster log) rather than hang.
CLUSTER_START_SECONDS = 60
# Appwrite runs: their own database (the bucket is in memory, so it is rebuilt every run) and the
# emulator's credentials; any non-empty project/key works, the emulator checks they match.
APPWRITE_DB = SITE_DIR / "bench-appwrite.sqlite3"
APPWRITE_BUCKET = "bench-images"
APPWRITE_PROJECT = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="products per photo size")
    parser.add_argument("--sizes", default="1600x1200,4000x3000")
    parser.add_argument("--storage", choices=("local", "appwrite", "both"), default="both",
                        help="where mode (b) reads photos from (a and c always read local files)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="models to measure, of: " + ", ".join(MODELS))
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # internal: run one measurement
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        result = MODES[args.mode](args)
        result.setdefault("rss_mb", _peak_rss_mb())
        print("RESULT " + json.dumps(result))
        return
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    for width, height in sizes:
        _ensure_photos(width, height)
    rows = [("import tensorflow (baseline)", _run(["--mode", "tf"])),
            ("import LiteRT+Django (baseline)", _run(["--mode", "litert"]))]
    for model in args.models.split(","):
        os.environ["BENCH_MODEL"] = model  # inherited by every step's subprocess
        _measure_model(args, sizes, rows)


def _measure_model(args, sizes, rows) -> None:
    """Train (once) and activate ``BENCH_MODEL``, then run every mode on every size."""
    global MODEL_DIR
    MODEL_DIR = BENCH_DIR / ("model" if os.environ["BENCH_MODEL"] == "cnn"
                             else f"model-{os.environ['BENCH_MODEL']}")
    _ensure_model()
    setup = ["--mode", "setup", "--n", str(args.n), "--sizes", args.sizes]
    _run(setup)
    runs = [r for r in RUNS if r[1] in ("", "memory") or args.storage in ("both", r[1])]
    emulator = None
    if any(r[1] == "appwrite" for r in runs):
        sys.path.insert(0, str(ROOT))
        from tests.support.appwrite_emulator import AppwriteEmulator

        emulator = AppwriteEmulator(project_id=APPWRITE_PROJECT).start()
        emulator.create_bucket(APPWRITE_BUCKET)
        APPWRITE_DB.unlink(missing_ok=True)  # its model/photo rows point into the old bucket
        _run(setup, _storage_env("appwrite", emulator))
    try:
        table = []
        for width, height in sizes:
            size = f"{width}x{height}"
            results = {}
            for key, storage, mode, _ in runs:
                if storage == "appwrite":
                    emulator.requests_log.clear()
                results[key] = _run(["--mode", mode, "--size", size, "--n", str(args.n)],
                                    _storage_env(storage, emulator,
                                                 preview=key.endswith("preview")))
                if storage == "appwrite":
                    results[key]["served"] = _served(emulator, key)
            table.append((size, results))
    finally:
        if emulator is not None:
            emulator.stop()
    _print_table(args.n, table, rows, runs)


def _peak_rss_mb(pid: int | str = "self") -> float:
    """Peak RSS (VmHWM) of a process. Not ``ru_maxrss``: Linux keeps that across fork and
    exec, so a fresh subprocess would report its parent's peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- Orchestration ---------------------------------------------------------------------------

def _run(extra: list[str], env_extra: dict[str, str] | None = None) -> dict:
    env = {**_django_env(), **(env_extra or {})}
    proc = subprocess.run([sys.executable, __file__, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench step {extra} failed:\n{proc.stderr[-4000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _django_env() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
            "CATALOG_VAR_DIR": str(SITE_DIR), "DJANGO_MEDIA_ROOT": str(MEDIA_DIR),
            "DATABASE_URL": f"sqlite:///{SITE_DIR / 'bench.sqlite3'}",
            "CLASSIFIER_AUTO_CLASSIFY": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
            "DJANGO_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


def _storage_env(storage: str, emulator=None, *, preview: bool = False) -> dict[str, str]:
    """Extra environment of a step that uses ``storage`` (nothing for local files)."""
    if storage != "appwrite":
        return {}
    return {"DATABASE_URL": f"sqlite:///{APPWRITE_DB}", "APPWRITE_ENDPOINT": emulator.endpoint,
            "APPWRITE_PROJECT_ID": emulator.project_id, "APPWRITE_API_KEY": emulator.api_key,
            "APPWRITE_BUCKET_ID": APPWRITE_BUCKET,
            "APPWRITE_CLASSIFY_FROM_PREVIEW": "1" if preview else "0"}


def _served(emulator, key: str) -> str:
    """What the emulator served during one run; proves the run really read from Appwrite."""
    downloads = len(emulator.requests_to(r"/files/[^/]+/download$", "GET"))
    previews = len(emulator.requests_to(r"/files/[^/]+/preview$", "GET"))
    if downloads + previews == 0:
        sys.exit(f"bench step {key} never fetched from the Appwrite emulator")
    return f"emulator served {downloads} downloads (model included), {previews} previews"


def _print_table(n: int, table, baselines, runs) -> None:
    meta = json.loads((MODEL_DIR / "meta.json").read_text())
    contract = meta["contract"]
    print(f"\nClassification throughput, N={n} per size, model: {meta.get('description')} "
          f"{contract['height']}x{contract['width']}, {os.cpu_count()} cores")
    print("Peak RSS: VmHWM of the measuring process; for (b) the largest qcluster worker.")
    print(f"{'photos':<10} {'mode':<34} {'storage':<18} {'img/s':>8} {'ms/img':>8} "
          f"{'peak RSS MB':>12} {'vs (a)':>7} {'vs (c)':>7}")
    for size, results in table:
        for key, _, _, (name, where) in runs:
            r = results[key]
            rate = r["images"] / r["seconds"]
            vs_a = rate / (results["a"]["images"] / results["a"]["seconds"])
            vs_c = rate / (results["c"]["images"] / results["c"]["seconds"])
            print(f"{size:<10} {name:<34} {where:<18} {rate:>8.1f} {1000 / rate:>8.1f} "
                  f"{r['rss_mb']:>12.0f} {vs_a:>6.1f}x {vs_c:>6.2f}x")
        c = results["c"]["labels"]
        for key in results:
            if key in ("a", "c"):
                continue
            same = sum(results[key]["labels"].get(k) == v for k, v in c.items())
            # A preview is resized by the server, so its pixels (and a few labels) may differ.
            flag = "  (preview pixels differ)" if key.endswith("preview") else "  <-- MISMATCH"
            served = f"  [{results[key]['served']}]" if "served" in results[key] else ""
            print(f"{size:<10} top-1 identical ({key}) vs (c): {same}/{len(c)}"
                  + ("" if same == len(c) else flag) + served)
    for name, r in baselines:
        print(f"{'baseline':<10} {name:<34} {'':<18} {'':>8} {'':>8} {r['rss_mb']:>12.0f}")


# --- Cached assets -----------------------------------------------------------------------------

def _ensure_model() -> None:
    if (MODEL_DIR / "model.tflite").exists():
        return
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    what = "the tutorial cnn" if MODEL_NAME == "cnn" else f"the {MODEL_NAME} model"
    print(f"Training {what} on generated shapes (once)...", flush=True)
    proc = subprocess.run([sys.executable, __file__, "--mode", "train"], cwd=ROOT,
                          env=_django_env())
    if proc.returncode != 0:
        sys.exit("training the bench model failed")


def _train(args) -> dict:
    from training.dataset import LabelledItem
    from training.hparams import HParams
    from training.pipeline import run_training

    rng = np.random.default_rng(0)
    items = []
    for label in TRAIN_CLASSES:
        for index in range(TRAIN_PER_CLASS):
            data = _shape_photo(rng, 240, 180, label)
            items.append(LabelledItem(f"{label}/{index}.jpg", label, lambda d=data: d))
    if MODEL_NAME == "cnn":
        hparams = HParams(architecture="cnn", image_size=MODEL_SIZE, epochs=TRAIN_EPOCHS,
                          batch_size=16, weights=None, augment=False, min_images_per_class=5,
                          decode_workers=2, quantization="float32")
        description = "tutorial cnn"
    else:
        hparams = HParams(decode_workers=2)  # train_classifier's defaults
        description = "default (EfficientNet-Lite0)"
    outcome = run_training(items, hparams, workdir=MODEL_DIR / "run", cache_root=BENCH_DIR)
    (MODEL_DIR / "model.tflite").write_bytes(outcome.tflite_bytes)
    (MODEL_DIR / "meta.json").write_text(json.dumps(
        {"labels": outcome.labels, "contract": outcome.contract.to_dict(),
         "summary": outcome.summary(), "architecture": hparams.architecture,
         "quantization": outcome.quantization,
         "description": f"{description}, {outcome.quantization}"}))
    return {"labels": outcome.labels}


def _shape_photo(rng, width: int, height: int, kind: str | None = None) -> bytes:
    """A photo-like JPEG: a smooth gradient, a few shapes, blur-free sensor noise."""
    from PIL import Image, ImageDraw

    small_w, small_h = max(64, width // 8), max(48, height // 8)
    yy, xx = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    tilt = rng.uniform(-0.6, 0.6, (2, 3))
    canvas = (base + xx[..., None] * tilt[0] * 160 / small_w
              + yy[..., None] * tilt[1] * 160 / small_h)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    kind = kind or TRAIN_CLASSES[int(rng.integers(len(TRAIN_CLASSES)))]
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = rng.integers(0, small_w // 2), rng.integers(0, small_h // 2)
        x1, y1 = x0 + rng.integers(small_w // 6, small_w // 2), y0 + rng.integers(small_h // 6,
                                                                                   small_h // 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if kind == "circles":
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == "squares":
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            for offset in range(0, small_w, 6):
                draw.line([(offset, 0), (offset, small_h)], fill=colour, width=2)
    img = img.resize((width, height), Image.Resampling.BICUBIC)
    noisy = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3),
                                                            dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _photo_dir(width: int, height: int) -> Path:
    return MEDIA_DIR / PHOTO_SUBDIR / f"{width}x{height}"


def _ensure_photos(width: int, height: int) -> None:
    folder = _photo_dir(width, height)
    if len(list(folder.glob("*.jpg"))) >= DISTINCT_PHOTOS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Generating {DISTINCT_PHOTOS} photos of {width}x{height} (once)...", flush=True)

    def make(index: int) -> None:
        rng = np.random.default_rng(index)
        (folder / f"{index:04d}.jpg").write_bytes(_shape_photo(rng, width, height))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(make, range(DISTINCT_PHOTOS)))


def _photo_names(width: int, height: int, n: int) -> list[str]:
    """Storage names of the N products' photos (the distinct photos, repeated)."""
    return [f"{PHOTO_SUBDIR}/{width}x{height}/{i % DISTINCT_PHOTOS:04d}.jpg" for i in range(n)]


# --- Subprocess modes --------------------------------------------------------------------------

def _setup(args) -> dict:
    """Bench database: categories for the labels, an active model version, N products per size.

    With ``APPWRITE_*`` set (a fresh database and bucket), the model file and the distinct photos
    are saved through ``AppwriteStorage``, so each product's image name maps to its file id.
    """
    import hashlib

    import django
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.core.management import call_command

    django.setup()
    from django.conf import settings

    from catalog.models import Category, Product
    from classifier.models import ModelVersion
    from classifier.services import model_version_activate

    call_command("migrate", verbosity=0)
    meta = json.loads((MODEL_DIR / "meta.json").read_text())
    content = (MODEL_DIR / "model.tflite").read_bytes()
    for label in meta["labels"]:
        Category.objects.get_or_create(slug=label, defaults={"name": label.title()})
    checksum = hashlib.sha256(content).hexdigest()
    version = ModelVersion.objects.filter(checksum=checksum).first()
    if version is None:
        version = ModelVersion(number=(ModelVersion.objects.count() + 1), labels=meta["labels"],
                               input_contract=meta["contract"],
                               architecture=meta.get("architecture", "cnn"),
                               quantization=meta.get("quantization", "float32"),
                               checksum=checksum, size_bytes=len(content))
        version.file.save(f"bench-{MODEL_NAME}.tflite", ContentFile(content), save=False)
        version.save()
    # Old bench products go first: activation re-classifies the products the classifier filed,
    # and that job must not run beside the timed one.
    Product.objects.filter(sku__startswith="bench-").delete()
    model_version_activate(model_version=version)
    for spec in args.sizes.split(","):
        width, height = (int(v) for v in spec.split("x"))
        if settings.USE_APPWRITE:
            for name in sorted(set(_photo_names(width, height, args.n))):
                saved = default_storage.save(name, ContentFile((MEDIA_DIR / name).read_bytes()))
                assert saved == name, (saved, name)
        Product.objects.bulk_create([
            Product(sku=f"bench-{spec}-{i:05d}", title=f"Bench {i}", image=name)
            for i, name in enumerate(_photo_names(width, height, args.n))])
    return {}


def _tutorial(args) -> dict:
    """(a) One image at a time, as the TensorFlow image-classification tutorial does it."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    width, height = (int(v) for v in args.size.split("x"))
    meta = json.loads((MODEL_DIR / "meta.json").read_text())
    interpreter = Interpreter(model_path=str(MODEL_DIR / "model.tflite"))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    # A two-output model (logits and embedding): the logits are the output one wide per label.
    out = next(d for d in interpreter.get_output_details()
               if d["shape"][-1] == len(meta["labels"]))
    model_h, model_w = meta["contract"]["height"], meta["contract"]["width"]
    labels = {}
    start = time.perf_counter()
    for index, name in enumerate(_photo_names(width, height, args.n)):
        data = (MEDIA_DIR / name).read_bytes()  # "download the whole file"
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((model_w, model_h))
        batch = np.asarray(img, dtype=np.float32)[None]
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        logits = interpreter.get_tensor(out["index"])[0]
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        labels[str(index)] = meta["labels"][int(np.argmax(probs))]
    return {"images": args.n, "seconds": time.perf_counter() - start, "labels": labels}


def _project(args) -> dict:
    """(b) The project's task code end to end: a real qcluster (2 workers) runs the job's chunks.

    Timed from enqueueing to the job's ``finished_at`` (includes broker polling); peak RSS is
    the largest worker process's.
    """
    import django

    django.setup()
    from django.utils import timezone

    from catalog.models import Product
    from classifier.models import ClassificationJob
    from classifier.services import classification_job_start

    log = SITE_DIR / "qcluster.log"
    with open(log, "wb") as out:
        # os.environ is the step's environment (local or Appwrite), set by the bench's _run.
        cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT,
                                   env={**os.environ, "DJANGO_LOG_LEVEL": "INFO"},
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready_by = time.monotonic() + CLUSTER_START_SECONDS
        while b"running" not in log.read_bytes() and time.monotonic() < ready_by:
            if cluster.poll() is not None:
                sys.exit(f"qcluster died:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        products = Product.objects.filter(sku__startswith=f"bench-{args.size}-")
        started = timezone.now()
        job = classification_job_start(products=products, scope=f"bench {args.size}")
        while not ClassificationJob.objects.filter(pk=job.pk, finished_at__isnull=False).exists():
            if cluster.poll() is not None:
                sys.exit(f"qcluster died:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        rss = max(_peak_rss_mb(pid) for pid in _session_pids(cluster.pid))
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
    job.refresh_from_db()
    assert job.done_count == args.n, (job.done_count, job.failed_count, job.error)
    return {"images": args.n, "seconds": (job.finished_at - started).total_seconds(),
            "labels": _labels_by_index(products), "rss_mb": rss}


def _project_sync(args) -> dict:
    """(b') The same chunk code run in this one process (``classify_catalog --sync``)."""
    import django

    django.setup()
    from catalog.models import Product
    from classifier.services import classification_job_run_sync

    products = Product.objects.filter(sku__startswith=f"bench-{args.size}-")
    start = time.perf_counter()
    job = classification_job_run_sync(products=products, scope=f"bench sync {args.size}")
    seconds = time.perf_counter() - start
    assert job.done_count == args.n, (job.done_count, job.failed_count, job.error)
    return {"images": args.n, "seconds": seconds, "labels": _labels_by_index(products)}


def _labels_by_index(products) -> dict[str, str]:
    return {str(int(sku.rsplit("-", 1)[1])): slug
            for sku, slug in products.values_list("sku", "predicted_category__slug")}


def _session_pids(session_id: int) -> list[int]:
    """Processes of a session (the qcluster and its workers) from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # fields after "(comm)": state ppid pgrp session
            pids.append(int(stat.parent.name))
    return pids


def _ceiling(args) -> dict:
    """(c) Shared preprocessing + batched inference on bytes in memory (no storage, no DB)."""
    import django

    from classifier.contract import InputContract
    from classifier.inference import LiteRTClassifier, top_k

    django.setup()  # only to import the runtime's constants; no query is made
    from classifier.preprocessing import decode_image
    from classifier.runtime import INVOKE_BATCH
    from classifier.services.classify import DECODE_WORKERS

    width, height = (int(v) for v in args.size.split("x"))
    meta = json.loads((MODEL_DIR / "meta.json").read_text())
    contract = InputContract.from_dict(meta["contract"])
    model = LiteRTClassifier((MODEL_DIR / "model.tflite").read_bytes(), labels=meta["labels"],
                             contract=contract, num_threads=2, max_batch=INVOKE_BATCH)
    distinct = {name: (MEDIA_DIR / name).read_bytes()
                for name in set(_photo_names(width, height, args.n))}
    blobs = [distinct[name] for name in _photo_names(width, height, args.n)]
    predictions = []
    start = time.perf_counter()
    # Decoding streams through the pool while the main thread runs inference on full batches
    # (LiteRT releases the GIL in invoke), so the two overlap.
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        decoded = pool.map(lambda b: decode_image(b, size=contract.size), blobs)
        while batch := list(itertools.islice(decoded, CEILING_BATCH)):
            predictions += top_k(model.predict_proba(np.stack(batch)), model.labels, k=3)
    seconds = time.perf_counter() - start
    labels = {str(i): p.label for i, p in enumerate(predictions)}
    return {"images": args.n, "seconds": seconds, "labels": labels}


def _import_tf(args) -> dict:
    import tensorflow  # noqa: F401

    return {}


def _import_litert(args) -> dict:
    import django

    django.setup()
    import classifier.services  # noqa: F401
    import classifier.tasks  # noqa: F401

    return {}


MODES = {"train": _train, "setup": _setup, "a": _tutorial, "b": _project, "b1": _project_sync,
         "c": _ceiling, "tf": _import_tf, "litert": _import_litert}
# (result key, storage it needs, mode, (row name, storage column)); storage "" and "memory" rows
# always run (they are the references the others are compared with).
RUNS = [
    ("a", "", "a", ("(a) tutorial, per image", "local files")),
    ("b", "local", "b", ("(b) task code, qcluster 2 workers", "local files")),
    ("b1", "local", "b1", ("(b') task code, one process --sync", "local files")),
    ("b-appwrite", "appwrite", "b", ("(b) task code, qcluster 2 workers", "appwrite emulator")),
    ("b-appwrite-preview", "appwrite", "b",
     ("(b) task code, qcluster 2 workers", "appwrite, preview")),
    ("c", "memory", "c", ("(c) ceiling, bytes in memory", "in memory")),
]

if __name__ == "__main__":
    main()
