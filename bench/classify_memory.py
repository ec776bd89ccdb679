"""Peak memory one POST /api/v1/classify/ costs a real gunicorn worker, per kind of image.

    .venv/bin/python bench/classify_memory.py

Sets up a fresh SQLite site with the tiny test model active (tests/support/tiny_model.py; the
setup process converts it with TensorFlow, the server never imports it), starts gunicorn with
one sync worker, warms it up with a small photo, then for each image sends one request and
reads the worker's peak resident memory (``VmHWM`` in /proc/<pid>/status) before and after:
the increase is what that request cost. A fresh worker per image, so peaks do not hide each
other. Anonymous requests and a staff token (the authenticated limit) are both measured.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
START_SECONDS = 60


def flat_png(side: int) -> bytes:
    """A flat grey PNG: a few hundred KB on disk, ``side`` x ``side`` pixels decoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 120, 120)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def photo_jpeg(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((width, height)).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


CASES = [
    ("flat PNG 7000x7000", "anonymous", lambda: flat_png(7000)),
    ("flat PNG 7000x7000", "staff token", lambda: flat_png(7000)),
    ("flat PNG 3400x3400", "anonymous", lambda: flat_png(3400)),
    ("JPEG photo 6000x4000", "anonymous", lambda: photo_jpeg(6000, 4000)),
]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = _site(Path(tmp))
        token = _setup(env)
        rows = []
        for label, who, make in CASES:
            data = make()
            headers = {"Authorization": f"Token {token}"} if who == "staff token" else {}
            rows.append((label, who, len(data), *_measure(env, data, headers)))
    print("One POST /api/v1/classify/ per row, fresh gunicorn sync worker; peak RSS increase")
    print(f"{'image':<24}{'caller':<13}{'file KB':>9}{'status':>8}{'peak +MB':>10}  answer")
    for label, who, size, status, mb, answer in rows:
        print(f"{label:<24}{who:<13}{size / 1024:>9.0f}{status:>8}{mb:>10.0f}  {answer[:70]}")


def _site(tmp: Path) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "CATALOG_VAR_DIR": str(tmp),
            "DJANGO_MEDIA_ROOT": str(tmp / "media"), "CLASSIFY_ANON_RATE": "1000/min",
            "DJANGO_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


SETUP = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from tests.support.model_versions import stored_model_version
from tests.support.tiny_model import DEFAULT_LABELS, make_tiny_tflite, tiny_contract
stored_model_version(make_tiny_tflite(), labels=DEFAULT_LABELS, number=1, contract=tiny_contract())
user = User.objects.create_user("bench-staff", is_staff=True)
print("TOKEN", Token.objects.create(user=user).key)
"""


def _setup(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("TOKEN"))


def _measure(env: dict[str, str], data: bytes, headers: dict) -> tuple[int, float, str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "1",
         "--worker-class", "sync", "--timeout", "300", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/v1/classify/"
    try:
        _wait_ready(url)
        worker = _worker_pid(server.pid)
        requests.post(url, files={"image": ("warm.jpg", photo_jpeg(640, 480))}, timeout=60)
        before = _peak_mb(worker)
        answer = requests.post(url, files={"image": ("image", data)}, headers=headers,
                               timeout=300)
        return answer.status_code, _peak_mb(worker) - before, answer.text.replace("\n", " ")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


if __name__ == "__main__":
    main()
