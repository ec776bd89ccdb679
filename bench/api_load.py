"""Load test of the storefront API at 10,000 and 100,000 products (SQLite and PostgreSQL).

For each database and catalog size: a fresh database is migrated and seeded (bulk inserts,
~20 categories), the site is served by gunicorn on loopback, and wrk (or a Python keep-alive
client when wrk is absent) drives three product-list requests for a fixed time at a fixed
concurrency. Prints requests/s, p50 and p99 per case and the p99 ratio 100k / 10k (target
<= 1.5: the cost of a page must not grow with the catalog).

    .venv/bin/python bench/api_load.py                 # 10 s per case, both databases
    .venv/bin/python bench/api_load.py --duration 3 --databases sqlite
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "bench_api"
SIZES = (10_000, 100_000)
# Rows per INSERT batch: large enough to amortise round trips, small enough for SQLite's limit
# on bound parameters per statement.
BATCH = 500
ADJECTIVES = ["red", "green", "small", "large", "classic", "modern", "light", "heavy", "soft",
              "bright", "dark", "fresh", "smart", "rustic", "vintage", "sporty", "compact",
              "deluxe", "eco", "premium"]
NOUNS = ["apple", "lamp", "chair", "kettle", "guitar", "shirt", "hammer", "bottle", "tent",
         "drill", "scarf", "teapot", "racket", "violin", "basket", "blender", "jacket", "mug",
         "sandal", "pan", "saw", "drum", "bowl", "clock", "rug", "glove", "helmet", "vase",
         "desk", "broom"]
# What each case asks for: a page of 50, the same filtered to a top-level category (which
# includes its sub-categories), and a search for one word (~1 in 30 products).
CASES = {
    "list": "/api/v1/products/?page_size=50",
    "category": "/api/v1/products/?page_size=50&category=dept-1",
    "search": "/api/v1/products/?page_size=50&search=kettle",
}


def seed(count: int) -> None:
    """Insert ~20 categories and ``count`` products into the database DATABASE_URL names."""
    import django

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from catalog.models import Category, Product

    rng = random.Random(count)
    categories = []
    for d in range(5):  # 5 departments x 3 sub-categories, plus the departments: 20
        dept = Category.objects.create(name=f"Department {d}", slug=f"dept-{d}", position=d)
        categories.append(dept)
        categories += [Category.objects.create(name=f"Dept {d} sub {s}", slug=f"dept-{d}-{s}",
                                               parent=dept) for s in range(3)]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for offset in range(0, count, BATCH):
        rows = []
        for n in range(offset, min(count, offset + BATCH)):
            adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
            rows.append(Product(
                sku=f"SKU-{n:07d}", title=f"{adjective.title()} {noun} {n}",
                description=f"A {adjective} {noun} for everyday use. Item number {n}.",
                is_published=rng.random() < 0.9, price=rng.randint(100, 99_999) / 100,
                category=rng.choice(categories), category_source="person",
                image=f"products/sku-{n:07d}/photo.jpg",
            ))
        Product.objects.bulk_create(rows)
    # Spread creation times so "newest first" is a real ordering, as in a live catalog.
    Product.objects.all().update(created_at=start)
    for pk in range(1, count + 1, BATCH):
        Product.objects.filter(pk__gte=pk, pk__lt=pk + BATCH).update(
            created_at=start + timedelta(minutes=pk))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _site_env(database_url: str, var_dir: Path) -> dict[str, str]:
    env = os.environ.copy()
    env.update({
        "DATABASE_URL": database_url, "CATALOG_VAR_DIR": str(var_dir),
        "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING", "CLASSIFIER_AUTO_CLASSIFY": "0",
    })
    env.pop("PYTEST_VERSION", None)
    return env


def prepare_database(kind: str, size: int, work: Path) -> str:
    """Create, migrate and seed a fresh database; return its DATABASE_URL."""
    if kind == "sqlite":
        path = work / f"bench-{size}.sqlite3"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
        url = f"postgres://postgres@127.0.0.1:5432/{PG_BENCH_DB}"
    env = _site_env(url, work)
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    subprocess.run([py, str(Path(__file__).resolve()), "--seed", str(size)], cwd=REPO, env=env,
                   check=True)
    # Planner statistics, as a maintained production database has them: without them SQLite
    # picks the category index and sorts every match instead of walking the primary key.
    if kind == "postgres":
        subprocess.run([py, "manage.py", "dbshell", "--", "-c", "VACUUM ANALYZE"], cwd=REPO,
                       env=env, check=True, stdout=subprocess.DEVNULL)
    else:
        import sqlite3

        with sqlite3.connect(path) as conn:
            conn.execute("ANALYZE")
    return url


class Server:
    """gunicorn on loopback: one sync worker per core (the machine has 2)."""

    def __init__(self, database_url: str, work: Path, workers: int):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", str(workers), "-b",
             f"127.0.0.1:{self.port}", "--log-level", "warning"],
            cwd=REPO, env=_site_env(database_url, work),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status = _get(self.port, CASES["list"])
                if status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk(port: int, path: str, duration: float, concurrency: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error responses:\n{out}")

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        return float(value) * _WRK_UNITS[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, latency("50"), latency("99")


def _python_load(port: int, path: str, duration: float,
                 concurrency: int) -> tuple[float, float, float]:
    """Fallback load generator: keep-alive connections, one thread each, fixed duration."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / duration, cuts[49], cuts[98]


def _postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "skip PostgreSQL"
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(args.seed)
        return
    load = _wrk if shutil.which("wrk") else _python_load
    kinds = [k for k in args.databases.split(",") if k != "postgres" or _postgres_reachable()]
    results: dict[tuple[str, int, str], tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        (work / "static").mkdir()  # STATIC_ROOT under CATALOG_VAR_DIR; whitenoise wants it
        for kind in kinds:
            for size in SIZES:
                started = time.monotonic()
                url = prepare_database(kind, size, work)
                print(f"# {kind} {size:,}: seeded in {time.monotonic() - started:.0f} s",
                      flush=True)
                server = Server(url, work, args.workers)
                try:
                    for case, path in CASES.items():
                        load(server.port, path, 1.0, args.concurrency)  # warm-up
                        results[kind, size, case] = load(server.port, path, args.duration,
                                                         args.concurrency)
                finally:
                    server.stop()
    _print_table(results, kinds, load.__name__.strip("_"), args)


def _print_table(results, kinds, tool, args) -> None:
    print(f"\nStorefront API load ({tool}, {args.concurrency} connections, {args.duration:g} s "
          f"per case, gunicorn {args.workers} workers)")
    print(f"{'db':<9}{'case':<10}{'products':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'p99 100k/10k':>14}")
    for kind in kinds:
        for case in CASES:
            small = results[kind, SIZES[0], case]
            for size in SIZES:
                rps, p50, p99 = results[kind, size, case]
                ratio = f"{p99 / small[2]:.2f}" if size == SIZES[-1] else ""
                print(f"{kind:<9}{case:<10}{size:>9,}{rps:>9.0f}{p50:>9.1f}{p99:>9.1f}"
                      f"{ratio:>14}")
    print("target: p99 ratio <= 1.50")


if __name__ == "__main__":
    main()
