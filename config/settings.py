"""Settings for every environment, read from environment variables only.

With no infrastructure variables the site runs embedded: SQLite under ``var/``, django-q2's ORM
broker and local file storage. ``DATABASE_URL``, ``REDIS_URL`` and ``APPWRITE_*`` switch to
PostgreSQL, Redis and Appwrite Storage without another settings module. ``.env.example`` lists
every variable; the README's configuration table explains each.
"""

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("CATALOG_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def _development_secret_key(path: Path) -> str:
    """A random key kept under var/ for development: never committed, shared by every local
    process (the web server and qcluster workers sign task payloads with it), made once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)  # atomic: processes starting at once all read the same key
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()

# A developer's .env (never committed) is read when present; real environments set variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------------
# Off unless asked for. Under pytest (which sets PYTEST_VERSION) the development defaults apply,
# so a bare `pytest` behaves like `make test`.
DEBUG = env.bool("DJANGO_DEBUG", default="PYTEST_VERSION" in os.environ)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string in production, or set "
            "DJANGO_DEBUG=1 for local development (make demo and make test do this)."
        )
    SECRET_KEY = _development_secret_key(VAR_DIR / ".dev-secret-key")

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin with the project's site: dashboard on the index (config/admin_site.py).
    "config.admin_site.CatalogAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "catalog",
    "classifier",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "catalog.middleware.StorageDeadlineMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "db.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    DATABASES["default"]["OPTIONS"] = {
        # The web server and several qcluster worker processes share one file. WAL lets readers
        # run beside a writer; IMMEDIATE transactions take the write lock up front instead of
        # failing on a lock upgrade; the timeout makes writers wait instead of raising
        # "database is locked" while another process commits.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file (not :memory:) so that a qcluster subprocess started by a test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Lets parallel test runs on one server use separate test databases.
    if env.str("DATABASE_TEST_NAME", default=""):
        DATABASES["default"]["TEST"] = {"NAME": env.str("DATABASE_TEST_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background tasks (django-q2) ---------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "catalog",
    # One worker per core: classification is CPU-bound (decode + inference), more would thrash.
    "workers": env.int("Q_WORKERS", default=2),
    # A classification chunk (CLASSIFIER_CHUNK_SIZE images) takes seconds; 10 minutes is a wide
    # margin for slow storage before the worker is killed as stuck.
    # Q_TIMEOUT/Q_RETRY override both (tests run a cluster with seconds to see re-delivery).
    "timeout": env.int("Q_TIMEOUT", default=600),
    # Must exceed the timeout, or a still-running chunk is handed to a second worker. A worker
    # that dies mid-chunk has its task re-delivered after this many seconds.
    "retry": env.int("Q_RETRY", default=720),
    # A chunk that fails three times has a real problem (recorded per product); stop retrying.
    "max_attempts": 3,
    # Acknowledge failed tasks so the broker does not redeliver them forever; failures are kept.
    "ack_failures": True,
    "save_limit": 500,
    # Workers restart after this many tasks, returning memory the interpreter cache grew.
    "recycle": 500,
    "catch_up": False,
    "label": "Background tasks",
    # Training runs for minutes to hours: its own cluster ("Q_CLUSTER_NAME=training
    # manage.py qcluster") with one worker, a long timeout and no retries, so a slow run is
    # neither killed early nor re-delivered into a duplicate model version.
    "ALT_CLUSTERS": {
        "training": {
            "workers": 1,
            "timeout": env.int("TRAINING_TIMEOUT", default=6 * 3600),
            "retry": env.int("TRAINING_TIMEOUT", default=6 * 3600) + 600,
            "max_attempts": 1,
            "recycle": 1,
        },
    },
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker polls; half a second keeps the admin's "classify" responsive.
    Q_CLUSTER["poll"] = 0.5

# --- Cache --------------------------------------------------------------------------------------
# One cache shared by every web process and worker, so API throttles hold across processes and
# machines and media-proxy thumbnails are made once: Redis when REDIS_URL is set, otherwise a
# database table (`migrate` creates it; see catalog/apps.py). The prefix lets several sites
# share one Redis.
_CACHE_PREFIX = env.str("DJANGO_CACHE_KEY_PREFIX", default="catalog")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL, "KEY_PREFIX": _CACHE_PREFIX}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                          "LOCATION": "django_cache", "KEY_PREFIX": _CACHE_PREFIX}}

# --- Storage ------------------------------------------------------------------------------------
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_URL = "/static/"
if DEBUG:
    # Development and tests serve static files from the apps (no collectstatic); an empty
    # STATIC_ROOT keeps WhiteNoise from warning "No directory at var/static" on every request
    # handler it builds. In production collectstatic fills it, and a missing one should warn.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

APPWRITE = {
    "ENDPOINT": env.str("APPWRITE_ENDPOINT", default=""),
    "PROJECT_ID": env.str("APPWRITE_PROJECT_ID", default=""),
    "API_KEY": env.str("APPWRITE_API_KEY", default=""),
    "BUCKET_ID": env.str("APPWRITE_BUCKET_ID", default=""),
    # Model files may live in their own (private) bucket; the image bucket is used otherwise.
    "MODELS_BUCKET_ID": env.str("APPWRITE_MODELS_BUCKET_ID", default=""),
    # A public bucket (read("any")) lets browsers load images straight from Appwrite; otherwise
    # the site proxies them through a cached view.
    "PUBLIC_BUCKET": env.bool("APPWRITE_PUBLIC_BUCKET", default=False),
    "SELF_SIGNED": env.bool("APPWRITE_SELF_SIGNED", default=False),
    "TIMEOUT": env.float("APPWRITE_TIMEOUT", default=30.0),
    "MAX_RETRIES": env.int("APPWRITE_MAX_RETRIES", default=4),
    # All the Appwrite time one web request may take, retries included (catalog/middleware.py);
    # config/gunicorn.conf.py keeps the worker timeout above it. Workers are not bound by it.
    "REQUEST_DEADLINE": env.float("APPWRITE_REQUEST_DEADLINE", default=60.0),
    "WEBHOOK_SECRET": env.str("APPWRITE_WEBHOOK_SECRET", default=""),
    "WEBHOOK_URL": env.str("APPWRITE_WEBHOOK_URL", default=""),
    "WEBHOOK_CREATES_PRODUCTS": env.bool("APPWRITE_WEBHOOK_CREATES_PRODUCTS", default=False),
    # Fetch a server-side preview (>= 2x the model input) instead of the original for inference.
    "CLASSIFY_FROM_PREVIEW": env.bool("APPWRITE_CLASSIFY_FROM_PREVIEW", default=False),
}
_APPWRITE_REQUIRED = ("ENDPOINT", "PROJECT_ID", "API_KEY", "BUCKET_ID")
USE_APPWRITE = all(APPWRITE[key] for key in _APPWRITE_REQUIRED)
if any(APPWRITE[key] for key in _APPWRITE_REQUIRED) and not USE_APPWRITE:
    missing = ", ".join(f"APPWRITE_{key}" for key in _APPWRITE_REQUIRED if not APPWRITE[key])
    raise ImproperlyConfigured(f"Appwrite is partly configured: also set {missing}.")

if USE_APPWRITE:
    _media_backend = {
        "BACKEND": "catalog.storage.AppwriteStorage",
        "OPTIONS": {"bucket_id": APPWRITE["BUCKET_ID"]},
    }
    _models_backend = {
        "BACKEND": "catalog.storage.AppwriteStorage",
        "OPTIONS": {"bucket_id": APPWRITE["MODELS_BUCKET_ID"] or APPWRITE["BUCKET_ID"]},
    }
else:
    _media_backend = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    _models_backend = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _media_backend,
    "models": _models_backend,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    # No collectstatic needed while developing or running the demo.
    STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
    }

# Uploads above this go to a temporary file rather than memory (Django's default, stated).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Largest request body Django reads for non-file fields; image bytes are limited separately.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Catalog import -----------------------------------------------------------------------------
# Folders a catalog import may read product images from. Image paths in an import file are
# resolved inside these and refused when they point elsewhere, so an uploaded CSV cannot make the
# server read arbitrary files. `import_catalog --images-dir DIR` adds a folder for one run.
CATALOG_IMPORT_ROOTS = [
    Path(p) for p in env.list("CATALOG_IMPORT_ROOTS", default=[str(BASE_DIR / "demo" / "catalog")])
]

# --- Training -----------------------------------------------------------------------------------
# Folders the admin's Retrain form and the API may train from (a folder or zip inside one of
# them), so a staff account cannot make the training worker read, or probe for, any server path.
# `manage.py train_classifier --from-dir DIR` reads the folder its operator names.
TRAINING_DATA_ROOTS = [
    Path(p) for p in env.list("TRAINING_DATA_ROOTS", default=[str(VAR_DIR / "training-data")])
]

# --- Classifier ---------------------------------------------------------------------------------
CLASSIFIER = {
    # Training chooses each model version's auto-fill thresholds so that the categories it fills
    # on its own are right at least this often (measured out of fold, conservatively); below
    # its threshold a prediction goes to the review queue.
    "TARGET_PRECISION": env.float("CLASSIFIER_TARGET_PRECISION", default=0.95),
    # The threshold for model versions without their own (trained before thresholds existed,
    # or imported from elsewhere).
    "CONFIDENCE_THRESHOLD": env.float("CLASSIFIER_CONFIDENCE_THRESHOLD", default=0.6),
    # Products per background task: big enough to amortise model start-up and one batched
    # invoke, small enough that several workers share a job and a retry redoes little.
    "CHUNK_SIZE": env.int("CLASSIFIER_CHUNK_SIZE", default=64),
    "TOP_K": env.int("CLASSIFIER_TOP_K", default=3),
    "NUM_THREADS": env.int("CLASSIFIER_NUM_THREADS", default=2),
    # Concurrent image downloads per worker, overlapping storage latency with decoding.
    "FETCH_WORKERS": env.int("CLASSIFIER_FETCH_WORKERS", default=8),
    # Classify new or changed product images automatically after the transaction commits.
    "AUTO_CLASSIFY": env.bool("CLASSIFIER_AUTO_CLASSIFY", default=True),
    # The hourly check on the training cluster starts a run (default options, "if better"
    # activation behind the quality gate) once people have labelled this many products since
    # the active model and the last training run; 0 turns automatic retraining off. 50 labels
    # is 5 to 10 more per category in a small catalog: enough to move a head trained on a few
    # hundred, and a run on stored embeddings costs seconds, so it need not wait for more.
    "RETRAIN_AFTER_LABELS": env.int("CLASSIFIER_RETRAIN_AFTER_LABELS", default=50),
}

# --- Similar products, search by photo, duplicates ---------------------------------------------
SIMILARITY = {
    # One index file per backbone, rebuilt in the background and memory-mapped read-only by every
    # web process (they share one copy through the page cache). Several hosts need this folder on
    # shared storage, or each host runs its own qcluster to rebuild it.
    "INDEX_DIR": Path(env.str("SIMILARITY_INDEX_DIR", default=str(VAR_DIR / "similarity"))),
    # Cosine similarity at or above which two products' images count as duplicates. Measured
    # with bench/duplicate_threshold.py on the demo catalog through the exported model: copies of
    # one photo (re-encoded, downscaled, cropped, brightened, shifted) score 0.90-0.99 and 96 %
    # reach 0.92; different items never passed 0.88 (86,000 pairs; 99th percentile 0.74).
    "DUPLICATE_THRESHOLD": env.float("SIMILARITY_DUPLICATE_THRESHOLD", default=0.92),
    # Without an index file (before the first rebuild), queries scan the stored embeddings of up
    # to this many products in the database: ~65 ms per 1,000 on two cores (bench/
    # similar_products.py), so at most ~130 ms a request; larger catalogs get empty answers until
    # the background rebuild has run (seconds after the first classification job).
    "EXACT_FALLBACK_MAX": env.int("SIMILARITY_EXACT_FALLBACK_MAX", default=2000),
    # A stale index is rebuilt at most this often after classification jobs (a bulk import makes
    # one job per new image); the scheduled check picks up the rest.
    "REBUILD_MIN_SECONDS": env.int("SIMILARITY_REBUILD_MIN_SECONDS", default=60),
}

# --- Auth, i18n -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Scripts send "Authorization: Token <key>"; browsers use the admin session. Token first so
    # an anonymous call to a protected endpoint gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Anyone reads the storefront; writes need staff plus the model's Django permission.
    "DEFAULT_PERMISSION_CLASSES": ["catalog.api.permissions.StorefrontPermissions"],
    "DEFAULT_PAGINATION_CLASS": "catalog.api.pagination.StorefrontPagination",
    "PAGE_SIZE": 24,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "catalog.api.filters.StableOrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "catalog.api.uploads.LimitedMultiPartParser",
    ],
    # Classification costs CPU: anonymous callers get this many per client IP. Counters live in
    # the shared default cache (see CACHES), so the limit holds across processes and machines.
    "DEFAULT_THROTTLE_RATES": {"classify_anon": env.str("CLASSIFY_ANON_RATE", default="10/min")},
    # The client IP: REMOTE_ADDR, unless this many trusted proxies (nginx, a load balancer) in
    # front each append to X-Forwarded-For; then the address the outermost of them saw. 0 (the
    # default) ignores X-Forwarded-For, which any client can write.
    "NUM_PROXIES": env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0),
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}
# Largest image the API accepts (upload or stored file); bigger gets 413. 10 MiB holds any
# product photo; the classifier's own limit (40 MiB) is for bulk imports.
API_MAX_UPLOAD_BYTES = env.int("API_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
# Pixels an anonymous classify image may decode to (after JPEG draft scaling, so any camera
# JPEG passes): 12 MP, a 4000 x 3000 photo, ~36 MB decoded. A flat 7000 x 7000 PNG is 160 KB
# on the wire but 147 MB decoded, and ~375 MB of peak memory without this limit.
CLASSIFY_ANON_MAX_PIXELS = env.int("CLASSIFY_ANON_MAX_PIXELS", default=12_000_000)
SPECTACULAR_SETTINGS = {
    "TITLE": "Catalog Classifier API",
    "DESCRIPTION": "Storefront catalog and staff classification endpoints.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components, so multipart uploads are described as binary.
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads Swagger UI from drf-spectacular-sidecar: works without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security (production) ----------------------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
