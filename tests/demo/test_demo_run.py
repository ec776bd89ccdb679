"""`python -m demo.run` end to end in a subprocess, on its own temporary var/ folder.

The demo runs embedded (SQLite, ORM broker, local files) whatever the test run uses, so it never
touches a shared PostgreSQL database. DEMO_IMAGE_SIZE keeps its training small (the real
pretrained backbone, at 64 px).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.flower_archive import CLASSES, make_archive

REPO_ROOT = Path(__file__).resolve().parents[2]
# Guards against a hang (setup trains a model); not a speed requirement.
SETUP_GUARD_SECONDS = 900
STOP_GUARD_SECONDS = 120
TABLES = ["auth_user", "catalog_category", "catalog_product", "classifier_modelversion"]

pytestmark = pytest.mark.slow


def demo_env(var_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("APPWRITE_", "PYTEST_", "DEMO_"))
           and key not in ("DATABASE_URL", "DATABASE_TEST_NAME", "REDIS_URL")}
    env.update(CATALOG_VAR_DIR=str(var_dir), DJANGO_DEBUG="1", PYTHONUNBUFFERED="1",
               DEMO_IMAGE_SIZE="64")
    return env


def run_setup(var_dir: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "demo.run", "--setup-only", *args], cwd=REPO_ROOT,
        env=demo_env(var_dir),
        capture_output=True, text=True, timeout=SETUP_GUARD_SECONDS,
    )
    assert result.returncode == 0, f"demo setup failed:\n{result.stdout}\n{result.stderr}"
    return result


def table_state(var_dir: Path) -> dict[str, object]:
    """Row counts of the demo's main tables and the admin's password hash."""
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        state: dict[str, object] = {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES
        }
        state["password"] = db.execute(
            "SELECT password FROM auth_user WHERE username = 'admin'").fetchone()[0]
    return state


@pytest.fixture(scope="module")
def prepared_demo(tmp_path_factory):
    """One demo set-up, shared: (var dir, first setup's output: stdout, then stderr's logs)."""
    var_dir = tmp_path_factory.mktemp("demo-var")
    result = run_setup(var_dir)
    return var_dir, result.stdout + result.stderr


def test_setup_creates_the_catalog_admin_and_a_model_and_prints_them(prepared_demo):
    var_dir, output = prepared_demo
    state = table_state(var_dir)

    assert state["auth_user"] == 1 and state["classifier_modelversion"] == 1
    assert state["catalog_product"] > 300 and state["catalog_category"] >= 8
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        leaves = db.execute("SELECT COUNT(*) FROM catalog_category c WHERE NOT EXISTS "
                            "(SELECT 1 FROM catalog_category k WHERE k.parent_id = c.id)"
                            ).fetchone()[0]
        published, labelled = db.execute(
            "SELECT SUM(is_published), SUM(category_source = 'person') FROM catalog_product"
        ).fetchone()
    # The README's count: categories products are filed under, not the groups above them.
    assert re.search(rf"Demo catalog: {state['catalog_product']} products in {leaves} "
                     "categories", output), output
    assert 0 < published == labelled < state["catalog_product"]
    # One line says no model was active during the import, not one line per product.
    assert output.count("not classified") <= 1, output
    assert re.search(r"Active model: v1 demo .*held-out accuracy \d+(\.\d)?%", output), output
    password = re.search(r"password: (\S+)\s+\(shown once", output).group(1)
    from django.contrib.auth.hashers import check_password

    assert check_password(password, state["password"])


def test_second_setup_creates_nothing_new_and_keeps_the_password(prepared_demo):
    var_dir, _ = prepared_demo
    before = table_state(var_dir)

    output = run_setup(var_dir).stdout

    assert table_state(var_dir) == before
    assert "password: unchanged" in output
    assert "train_classifier" not in output  # a model exists: no second training


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_using(marker: str) -> dict[int, str]:
    """Live processes whose command line or environment mentions ``marker`` (scans /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited while we looked, or not ours to read
        if state != "Z" and (marker in cmdline or marker in environ):
            found[int(entry.name)] = cmdline.strip()
    return found


class OutputReader:
    """Collects a process's output in a thread so its pipe never fills up."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def api_docs_routed() -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve("/api/docs/")
    except Resolver404:
        return False
    return True


def test_full_run_serves_the_admin_and_ctrl_c_stops_every_process(prepared_demo):
    var_dir, _ = prepared_demo
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.run", "--port", str(port)], cwd=REPO_ROOT,
        env=demo_env(var_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # our SIGINT below stands in for the terminal's Ctrl-C
    )
    reader = OutputReader(proc)
    try:
        deadline = time.monotonic() + SETUP_GUARD_SECONDS
        while "is running" not in reader.text():
            assert proc.poll() is None, f"demo exited early:\n{reader.text()}"
            assert time.monotonic() < deadline, f"demo never started:\n{reader.text()}"
            time.sleep(0.5)
        base = f"http://127.0.0.1:{port}"
        assert f"Admin:    {base}/admin/" in reader.text()
        assert http_status(f"{base}/admin/login/") == 200
        if api_docs_routed():
            assert http_status(f"{base}/api/docs/") == 200
        with urllib.request.urlopen(f"{base}/api/v1/products/", timeout=30) as response:
            assert json.load(response)["count"] > 0  # the storefront API has products
        assert_auto_fill_figures_match_the_database(reader.text(), var_dir)
        started = processes_using(str(var_dir))
        # runserver and two qclusters (each with its worker processes).
        assert len(started) >= 3, started

        proc.send_signal(signal.SIGINT)
        assert proc.wait(STOP_GUARD_SECONDS) == 0, reader.text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Stopping" in reader.text()
    assert processes_using(str(var_dir)) == {}, reader.text()


@pytest.mark.parametrize("sig, ignored_at_start", [
    (signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGHUP", "SIGINT ignored by a background shell"])
def test_termination_signals_take_the_ctrl_c_path_that_stops_every_process(sig,
                                                                            ignored_at_start):
    """``kill``, a closed terminal or a background job's Ctrl-C reach the demo as the
    KeyboardInterrupt whose clean-up the full run above checks; without it, the demo would die
    and leave its servers (in sessions of their own) running."""
    code = ("import sys, time\n"
            "from demo.run import stop_on_termination_signals\n"
            "stop_on_termination_signals()\n"
            "print('ready', flush=True)\n"
            "try:\n"
            "    time.sleep(60)\n"
            "except KeyboardInterrupt:\n"
            "    print('stopping', flush=True)\n"
            "    sys.exit(0)\n")

    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE,
                            preexec_fn=ignore_sigint if ignored_at_start else None)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        assert proc.stdout.read().strip() == "stopping"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_auto_fill_figures_match_the_database(output: str, var_dir: Path) -> None:
    """The printed auto-fill figures are the database's, checked against the catalog CSV."""
    import csv

    match = re.search(r"filed (\d+) of the (\d+) products nobody had labelled \(\d+%\) on its "
                      r"own(?:; (\d+) of those)?", output)
    assert match, output
    filled, new = int(match.group(1)), int(match.group(2))
    truth = {row["sku"]: row["category_slug"]
             for row in csv.DictReader(open(REPO_ROOT / "demo" / "catalog" / "catalog.csv"))}
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        rows = db.execute("SELECT p.sku, c.slug FROM catalog_product p JOIN catalog_category c "
                          "ON c.id = p.category_id WHERE p.category_source = 'classifier'"
                          ).fetchall()
        unlabelled = db.execute("SELECT COUNT(*) FROM catalog_product "
                                "WHERE category_source != 'person'").fetchone()[0]
    assert (filled, new) == (len(rows), unlabelled)
    if filled:
        right = sum(truth[sku] == slug for sku, slug in rows)
        assert int(match.group(3)) == right
        assert right / filled >= 0.95, output  # what the demo promises, on its own catalog


def test_flowers_setup_downloads_imports_and_trains_on_the_flower_catalog(flower_server,
                                                                         tmp_path):
    base, served, _ = flower_server
    # Enough per class for training's minimum of 5 labelled images (60% of 12 = 7).
    make_archive(served / "flower_photos.tgz", images_per_class=12)

    output = run_setup(tmp_path / "var", "--flowers", "--flowers-url",
                       f"{base}/flower_photos.tgz").stdout

    with sqlite3.connect(tmp_path / "var" / "db.sqlite3") as db:
        products = db.execute("SELECT COUNT(*), SUM(category_source = 'person'), "
                              "SUM(image != '') FROM catalog_product").fetchone()
        slugs = {row[0] for row in db.execute("SELECT slug FROM catalog_category")}
    assert products == (3 * 12, 3 * 7, 3 * 12)
    assert slugs == {"flowers", *CLASSES}
    assert "Active model: v1 demo" in output
