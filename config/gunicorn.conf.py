"""gunicorn settings for production: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Every value can be overridden from the environment (or on the command line). Why each one:

- ``gthread`` workers: each process serves ``GUNICORN_THREADS`` requests at once, so a slow
  client or a slow Appwrite call holds one thread, not a whole process, and the process keeps
  answering gunicorn's heartbeat (a sync worker is killed mid-request at the timeout, leaving a
  half-done upload behind). Put a buffering proxy (nginx: ``proxy_request_buffering on``, the
  default) in front: it reads slow uploads completely before gunicorn sees them.
- ``timeout`` is above the storage budget of one request (``APPWRITE_REQUEST_DEADLINE``, default
  60 s, enforced by ``catalog.middleware.StorageDeadlineMiddleware``) plus room for the database
  and the clean-up of a failed upload, so a request slowed by Appwrite ends with its own 503,
  never with the worker killed under it.
- Workers restart after ``max_requests`` (with jitter, so not all at once): the classify
  endpoint's model cache and Pillow's buffers are given back regularly.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
# One process per core; threads overlap the waits (storage, database, slow clients).
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))

# Storage budget + 30 s for the database, the response and UPLOAD_CLEANUP_SECONDS.
_storage_budget = float(os.environ.get("APPWRITE_REQUEST_DEADLINE", "60"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", str(int(_storage_budget) + 30)))
# A deploy lets running requests finish their storage work before the old workers stop.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", str(timeout)))
# Idle keep-alive connections from the proxy in front are closed after this long.
keepalive = 5

max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = max_requests // 10

# X-Forwarded-Proto (HTTPS behind a TLS proxy) is trusted from these addresses only; the client
# IP used by API throttles comes from DJANGO_TRUSTED_PROXY_COUNT (Django settings), not here.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "" turns it off
errorlog = "-"
