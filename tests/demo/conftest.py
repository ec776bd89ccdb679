"""Demo test fixtures: a loopback HTTP server for the tiny flower archive."""

import functools
import http.server
import threading

import pytest

from tests.support.flower_archive import RangeHandler


@pytest.fixture
def flower_server(tmp_path):
    """A loopback HTTP server over ``tmp_path/served``; yields (base_url, folder, requests)."""
    served = tmp_path / "served"
    served.mkdir()
    requests: list[dict[str, str]] = []
    handler = type("Handler", (RangeHandler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()
