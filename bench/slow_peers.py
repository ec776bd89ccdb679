"""Production serving with slow peers: the README's old gunicorn command vs config/gunicorn.conf.py.

    .venv/bin/python bench/slow_peers.py

A fresh SQLite site on the Appwrite emulator (tests/support/appwrite_emulator.py) with the
production storage settings (30 s timeout, 4 retries), one gunicorn worker process per server:

1. Slow Appwrite: the first upload request (or the first two) waits 35 s before Appwrite
   stores the file (its answer comes after the client's 30 s timeout); a staff client creates
   a product with an image through the API. Printed: the answer, how long it took, products
   created, files in the bucket once Appwrite has finished, files no product refers to
   (orphans), and how many of them ``sweep_orphan_files`` lists.
2. Slow client: one client sends a 1 KB upload at 100 bytes/s (10 s); meanwhile five others
   read the category list. Printed: the slowest of those five reads.

Baseline: ``gunicorn config.wsgi --workers 1`` (the README's command before this config: sync
worker, 30 s timeout). Measured: ``gunicorn -c config/gunicorn.conf.py config.wsgi`` with
``WEB_CONCURRENCY=1`` (gthread, timeout above APPWRITE_REQUEST_DEADLINE).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUCKET = "bench-images"
UPLOAD_DELAY_SECONDS = 35
SLOW_BODY_BYTES, SLOW_BYTES_PER_SECOND = 1000, 100
COMMANDS = {
    "README before (sync, --timeout 30)": ["config.wsgi", "--workers", "1"],
    "config/gunicorn.conf.py (gthread)": ["-c", "config/gunicorn.conf.py", "config.wsgi"],
}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from tests.support.appwrite_emulator import AppwriteEmulator
    from tests.support.tiny_model import solid_color_jpeg

    photo = solid_color_jpeg((200, 40, 40), (640, 480))
    rows = []
    with AppwriteEmulator() as emu, tempfile.TemporaryDirectory() as tmp:
        emu.create_bucket(BUCKET)
        env = _site(emu, Path(tmp))
        token = _setup(env)
        for label, args in COMMANDS.items():
            for slow in (1, 2):
                rows.append((label, f"{slow} slow", *_slow_appwrite(emu, env, args, token,
                                                                    photo, slow)))
        reads = {label: _slow_client(env, args) for label, args in COMMANDS.items()}
    print("One gunicorn worker process per server; Appwrite emulator with production timeouts")
    print(f"{'server':<36}{'uploads':<8}{'answer':<26}{'s':>6}{'products':>9}{'files':>6}"
          f"{'orphans':>8}{'swept':>6}")
    for label, slow, answer, seconds, products, files, orphans, swept in rows:
        print(f"{label:<36}{slow:<8}{answer[:25]:<26}{seconds:>6.1f}{products:>9}{files:>6}"
              f"{orphans:>8}{swept:>6}")
    print(f"\nA client sending {SLOW_BODY_BYTES} bytes at {SLOW_BYTES_PER_SECOND} B/s; the slowest"
          " of five other reads meanwhile:")
    for label, seconds in reads.items():
        print(f"{label:<36}{seconds:>6.1f} s")


def _site(emu, tmp: Path) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "CATALOG_VAR_DIR": str(tmp),
            "APPWRITE_ENDPOINT": emu.endpoint, "APPWRITE_PROJECT_ID": emu.project_id,
            "APPWRITE_API_KEY": emu.api_key, "APPWRITE_BUCKET_ID": BUCKET,
            "CLASSIFIER_AUTO_CLASSIFY": "0", "WEB_CONCURRENCY": "1", "DJANGO_LOG_LEVEL": "ERROR",
            "GUNICORN_ACCESS_LOG": "", "PYTHONPATH": str(ROOT)}


SETUP = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
user = User.objects.create_user("bench-staff", is_staff=True)
user.user_permissions.add(*Permission.objects.filter(codename__in=["add_product", "view_product"]))
print("TOKEN", Token.objects.create(user=user).key)
"""


def _setup(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("TOKEN"))


def _server(env: dict[str, str], args: list[str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", *args, "--bind",
                                f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(f"{url}/api/v1/categories/", timeout=30)
            return process, url
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(60)


def _slow_appwrite(emu, env, args, token, photo, slow: int
                   ) -> tuple[str, float, int, int, int, int]:
    emu.clear_faults()
    for stored in emu.files(BUCKET):  # each run starts from an empty bucket
        with emu._lock:
            emu._buckets[BUCKET].files.pop(stored["$id"], None)
    emu.inject("POST", rf"/buckets/{BUCKET}/files$", delay=UPLOAD_DELAY_SECONDS, times=slow)
    process, url = _server(env, args)
    sku = f"SLOW-{url.rsplit(':', 1)[1]}"
    started = time.perf_counter()
    try:
        answer = requests.post(f"{url}/api/v1/products/", headers={"Authorization": f"Token "
                                                                                    f"{token}"},
                               data={"sku": sku, "title": "Slow"},
                               files={"image": ("slow.jpg", photo)}, timeout=300)
        kind = answer.headers.get("Content-Type", "?").split(";")[0]
        text = f"{answer.status_code} {kind}"
    except requests.RequestException as exc:
        text = f"no answer ({type(exc).__name__})"
    seconds = time.perf_counter() - started
    time.sleep(max(0.0, slow * (UPLOAD_DELAY_SECONDS + 2) - seconds))  # let slow uploads land
    _stop(process)
    products, referenced, swept = _products(env, sku)
    names = [f["name"] for f in emu.files(BUCKET)]
    orphans = sum(1 for n in names if n not in referenced)
    return text, seconds, products, len(names), orphans, swept


PRODUCTS = """
import sys, django; django.setup()
from datetime import timedelta
from catalog.models import Product
from catalog.orphans import orphan_files_sweep
rows = list(Product.objects.filter(sku=sys.argv[1]).values_list("image", flat=True))
swept = len(orphan_files_sweep(older_than=timedelta(0)).orphans) if sys.argv[2] == "1" else -1
print(len(rows), swept, *[name.rsplit("/", 1)[-1] for name in rows])
"""


def _products(env: dict[str, str], sku: str) -> tuple[int, set[str], int | str]:
    """Products with this SKU, their image names, and what the sweep lists ("-" without it)."""
    has_sweep = (ROOT / "catalog" / "orphans.py").exists()
    out = subprocess.run([sys.executable, "-c", PRODUCTS, sku, "1" if has_sweep else "0"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    count, swept, *names = out.stdout.split()
    return int(count), set(names), swept if has_sweep else "-"


def _slow_client(env, args) -> float:
    process, url = _server(env, args)
    host, port = url.removeprefix("http://").split(":")
    sender = threading.Thread(target=_send_slowly, args=(host, int(port)), daemon=True)
    sender.start()
    time.sleep(1)
    slowest = 0.0
    for _ in range(5):
        started = time.perf_counter()
        requests.get(f"{url}/api/v1/categories/", timeout=120)
        slowest = max(slowest, time.perf_counter() - started)
    sender.join(60)
    _stop(process)
    return slowest


def _send_slowly(host: str, port: int) -> None:
    body = b'{"image_name": "' + b"x" * (SLOW_BODY_BYTES - 18) + b'"}'  # JSON: read in full
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /api/v1/classify/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     b"application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n")
        for start in range(0, len(body), SLOW_BYTES_PER_SECOND // 10):
            sock.sendall(body[start:start + SLOW_BYTES_PER_SECOND // 10])
            time.sleep(0.1)
        sock.recv(1024)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
