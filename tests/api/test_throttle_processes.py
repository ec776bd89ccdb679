"""Throttles hold across real server processes, and a made-up X-Forwarded-For changes nothing.

Two gunicorn servers, each started with the production config (config/gunicorn.conf.py), on
the test database (and Redis, when REDIS_URL is set): the anonymous classify limit is counted in
the shared cache, so it is one limit for the site however many processes or machines serve it.
"""

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.support import django_fixtures

pytestmark = pytest.mark.slow

RATE = 6
START_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    """Base URLs of two gunicorn processes (one worker each) sharing database and cache."""
    env = {**os.environ, "DATABASE_URL": django_fixtures.test_database_url(),
           "DJANGO_DEBUG": "1", "CLASSIFY_ANON_RATE": f"{RATE}/min", "WEB_CONCURRENCY": "1",
           "DJANGO_CACHE_KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex[:8]}",
           "DJANGO_MEDIA_ROOT": str(tmp_path / "media"), "GUNICORN_ACCESS_LOG": ""}
    servers, urls = [], []
    for index in range(2):
        port = _free_port()
        log = open(tmp_path / f"gunicorn-{index}.log", "wb")  # noqa: SIM115 - closed below
        servers.append((subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi",
             "--bind", f"127.0.0.1:{port}"], cwd=django_fixtures.REPO_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT), log))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            _wait_ready(url, tmp_path)
        yield urls
    finally:
        for process, log in servers:
            process.terminate()
            process.wait(30)
            log.close()


def _wait_ready(url: str, tmp_path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/api/v1/categories/", timeout=30)
            return
        except requests.RequestException:  # not listening yet, or still loading Django
            time.sleep(0.2)
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("gunicorn-*.log"))
    raise AssertionError(f"gunicorn did not start:\n{logs[-4000:]}")


def _classify(url: str, **headers) -> int:
    # An empty body: 400 from the view when allowed through, 429 when throttled first.
    return requests.post(f"{url}/api/v1/classify/", json={}, headers=headers, timeout=30)\
        .status_code


def test_the_anonymous_limit_is_one_limit_across_two_server_processes(two_servers):
    codes = [_classify(two_servers[i % 2]) for i in range(2 * RATE)]
    assert codes.count(400) == RATE and codes.count(429) == RATE
    assert codes[:RATE] == [400] * RATE  # both processes counted into the same limit


def test_made_up_x_forwarded_for_values_do_not_reset_the_limit(two_servers):
    codes = [_classify(two_servers[i % 2], **{"X-Forwarded-For": f"203.0.113.{i}"})
             for i in range(2 * RATE)]
    assert codes.count(400) == RATE and codes.count(429) == RATE
