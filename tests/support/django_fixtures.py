"""Fixtures for tests that need Django pieces running for real: media, a qcluster process."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# How long a test waits for background work before failing with the worker's log. This guards
# against hangs; it is not a speed requirement (speed is measured in bench/).
WAIT_SECONDS = 120


# CATALOG_TEST_STORAGE=appwrite runs every test with Appwrite (the loopback emulator) as the
# default and models storage instead of local files; see README "Appwrite Storage".
TEST_STORAGE = os.environ.get("CATALOG_TEST_STORAGE", "local")


@pytest.fixture(autouse=True)
def _isolated_media(request, settings, tmp_path):
    """Every test writes uploads to its own folder (or its own emulator bucket), never var/media,
    and similarity index files to its own folder, never var/similarity."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.SIMILARITY = {**settings.SIMILARITY, "INDEX_DIR": tmp_path / "similarity"}
    if TEST_STORAGE == "appwrite" and "nodb" not in request.keywords:
        from tests.support.appwrite_django import use_appwrite_storage

        use_appwrite_storage(settings, request.getfixturevalue("appwrite_bucket"),
                             request.getfixturevalue("monkeypatch"))


def test_database_url() -> str:
    """A DATABASE_URL for the test database, so a subprocess sees what the test wrote."""
    from django.db import connection

    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{cfg['NAME']}"


class QCluster:
    """A real ``manage.py qcluster`` process sharing the test database, broker and media."""

    def __init__(self, *, log_path: Path, env_extra: dict[str, str] | None = None,
                 cluster_name: str | None = None):
        from django.conf import settings

        self.log_path = log_path
        env = os.environ.copy()
        env.update({
            "DATABASE_URL": test_database_url(),
            "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "SIMILARITY_INDEX_DIR": str(settings.SIMILARITY["INDEX_DIR"]),
            "DJANGO_DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        })
        if cluster_name:
            env["Q_CLUSTER_NAME"] = cluster_name
        env.update(env_extra or {})
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=REPO_ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"qcluster exited early waiting for {what}:\n{self.log()}")
            time.sleep(0.2)
        raise AssertionError(f"Timed out waiting for {what}. qcluster log:\n{self.log()[-4000:]}")

    def kill_hard(self) -> None:
        """Kill the whole cluster at once, as a crashed machine would (no graceful stop)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGTERM to the main process only: it stops its sentinel and workers in order.
            # Signalling the whole group kills those children first and leaves the main process
            # waiting for them.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill_hard()
        self._log.close()


@pytest.fixture
def qcluster(transactional_db, tmp_path):
    """Start qcluster processes on demand; all are stopped at the end of the test.

    The broker queue is purged first so tasks left by an earlier run cannot interfere.
    """
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    started: list[QCluster] = []

    def start(**kwargs) -> QCluster:
        cluster = QCluster(log_path=tmp_path / f"qcluster-{len(started)}.log", **kwargs)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
