"""Django settings for the Penguin Classifier.

Every setting a user may change comes from an environment variable with a safe local
default. A value that cannot be parsed stops start-up with an
``ImproperlyConfigured`` error naming the variable. Any variable ``X`` may instead be
given as ``X_FILE``, the path of a file holding the value (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


def _check_url(name: str, value: str, schemes: set[str]) -> str:
    scheme = urlparse(value).scheme
    if scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}: unsupported URL scheme {scheme!r} in {value!r}; use one of {allowed}.")
    return value


VAR_DIR = Path(env_str("PENGUIN_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    """The configured key, or one generated once per checkout and kept in ``var/``.

    A generated key is never shared between machines, so the embedded default is safe
    for a laptop; production sets ``DJANGO_SECRET_KEY`` (or ``DJANGO_SECRET_KEY_FILE``).
    """
    configured = env_str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files of our own
    "classifier",
    "training",
]

MIDDLEWARE = [
    # First, so that every response (redirects and errors included) is counted, timed and
    # carries X-Request-ID, and every log line written while answering names the request.
    "penguinsite.middleware.RequestIdMiddleware",
    "penguinsite.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "penguinsite.middleware.JsonErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# A predict call without a cookie (penguinsite/wsgi.py) needs none of the browser's middleware:
# no session to load, no CSRF token (the API's writes are token- or session-authenticated),
# no user to attach, no messages, no static files. The admin and every other path keep them.
BROWSER_MIDDLEWARE = (
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)
PREDICT_MIDDLEWARE = [name for name in MIDDLEWARE if name not in BROWSER_MIDDLEWARE]

ROOT_URLCONF = "penguinsite.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "penguinsite" / "templates"],
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

WSGI_APPLICATION = "penguinsite.wsgi.application"

# --- Database -------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
_check_url("DATABASE_URL", _database_url, {"sqlite", "postgres", "postgresql", "pgsql"})
try:
    _database = dj_database_url.parse(
        _database_url,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        # Before each request's first query, a connection the database has ended (a restart,
        # a terminated session) is replaced instead of failing that request. On PostgreSQL the
        # check reads the socket and sends nothing while the connection is well (penguinsite/
        # postgresql/base.py). Off, a broken connection fails one request per worker with a
        # 503 and is replaced for the next.
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", True),
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from exc
# Django's SELECT 1 before every request, for a network path that drops idle connections
# without closing them (some NATs and load balancers): the socket check cannot see that.
_health_check_query = env_bool("DATABASE_HEALTH_CHECK_QUERY", False)
# The prediction log's INSERT prepared once per connection (penguinsite/postgresql/base.py).
# 0 behind a pooler that moves a session's statements between server sessions (PgBouncer in
# transaction or statement mode).
_prepared_statements = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if _database["ENGINE"] == "django.db.backends.postgresql":
    _database["ENGINE"] = "penguinsite.postgresql"
    _database["HEALTH_CHECK_QUERY"] = _health_check_query
    _database["PREPARED_STATEMENTS"] = _prepared_statements
if _database["ENGINE"] == "django.db.backends.sqlite3":
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE transactions serialise writers up front, so two processes registering a
    # version at once queue on the lock instead of failing half-way with "database is locked".
    _database["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    _database["CONN_MAX_AGE"] = 0
else:
    _database.setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery (training runs) -------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL") or ""
if CELERY_BROKER_URL:
    _check_url("CELERY_BROKER_URL", CELERY_BROKER_URL, {"redis", "rediss", "amqp", "memory"})
# Without a broker the same task runs in the calling process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A killed worker must not lose a run: the message is acknowledged only after the task
# returns, and redelivered if the worker dies (see docs/api.md, "Training runs and workers").
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("PENGUIN_TRAINING_SOFT_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("PENGUIN_TRAINING_TIME_LIMIT", 660, minimum=2)
# Training stops (the run fails, saying so) once the process passes this resident size, and
# a pool process that ends a task above it is replaced (memory given back to the machine).
PENGUIN_WORKER_MAX_MEMORY_MB = env_int("PENGUIN_WORKER_MAX_MEMORY_MB", 1536, minimum=64)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = PENGUIN_WORKER_MAX_MEMORY_MB * 1024  # KiB
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that accepts connections but never answers (a hung Redis) must cost a request a
# few seconds, not the rest of gunicorn's timeout: every socket operation gives up after
# PENGUIN_BROKER_TIMEOUT seconds, and publishing a run then answers 503 (the run recorded
# failed). Above the 1 s a worker's BRPOP waits, so idle workers are not affected.
PENGUIN_BROKER_TIMEOUT = env_float("PENGUIN_BROKER_TIMEOUT", 3.0, minimum=1.5)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 60,
    "socket_timeout": PENGUIN_BROKER_TIMEOUT,
    "socket_connect_timeout": PENGUIN_BROKER_TIMEOUT,
}
CELERY_BROKER_CONNECTION_TIMEOUT = PENGUIN_BROKER_TIMEOUT
# The queue training tasks are sent to and workers consume. Deployments sharing one Redis
# database use different names (the CI stack check does, beside the suite's own workers).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "") or "celery"
# Worker logs go through LOGGING below (JSON lines like the web's), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- The service's own settings -------------------------------------------------------------
PENGUIN_ARTIFACTS_DIR = Path(env_str("PENGUIN_ARTIFACTS_DIR", str(VAR_DIR / "artifacts"))).resolve()
PENGUIN_DATA_PATH = Path(env_str("PENGUIN_DATA_PATH", str(BASE_DIR / "data" / "penguins.csv")))
# How often (seconds) each process looks for new files and registry changes made by others.
PENGUIN_REGISTRY_REFRESH_SECONDS = env_float("PENGUIN_REGISTRY_REFRESH_SECONDS", 1.0, minimum=0.0)
# A new version is not activated when its test F1 is worse than the active one's by more.
PENGUIN_PROMOTION_MARGIN = env_float("PENGUIN_PROMOTION_MARGIN", 0.02, minimum=0.0)
# A run whose worker dies this many times (killed, out of memory) ends failed instead of
# being redelivered forever (acks_late requeues the message each time).
PENGUIN_TRAINING_MAX_ATTEMPTS = env_int("PENGUIN_TRAINING_MAX_ATTEMPTS", 3, minimum=1)
PENGUIN_MAX_BATCH = env_int("PENGUIN_MAX_BATCH", 20_000, minimum=1)
PENGUIN_MODEL_CACHE_SIZE = env_int("PENGUIN_MODEL_CACHE_SIZE", 32, minimum=1)
# A batch of at least 2,000 rows to a tree ensemble (random forest, gradient boosting) served
# by onnxruntime is predicted in blocks of rows on up to this many threads at once, each row's
# answer unchanged; 1: one thread, as for a single penguin.
PENGUIN_PREDICT_THREADS = env_int("PENGUIN_PREDICT_THREADS", 2, minimum=1)
# On (the default) every logged prediction is flushed to disk before its answer is sent, so
# no answer outlives its row even if PostgreSQL crashes; that costs one WAL flush per single
# classify (several ms on a virtual disk). Off: the row is still committed before the answer,
# but PostgreSQL flushes it within about 0.6 s (synchronous_commit=off for these INSERTs only),
# so a database crash can lose the last fraction of a second of the log. See bench/README.md.
PENGUIN_LOG_SYNC_COMMIT = env_bool("PENGUIN_LOG_SYNC_COMMIT", True)
# Monitoring: a window reads at most this many of its most recent predictions; below the
# minimum there is no drift verdict; beat checks every active version at this interval (s).
PENGUIN_MONITOR_MAX_ROWS = env_int("PENGUIN_MONITOR_MAX_ROWS", 10_000, minimum=1)
PENGUIN_MONITOR_MIN_ROWS = env_int("PENGUIN_MONITOR_MIN_ROWS", 30, minimum=1)
PENGUIN_MONITOR_INTERVAL = env_int("PENGUIN_MONITOR_INTERVAL", 3600, minimum=10)
# Dataset drift in two consecutive checks of the active version starts a training run.
PENGUIN_RETRAIN_ON_DRIFT = env_bool("PENGUIN_RETRAIN_ON_DRIFT", False)
CELERY_BEAT_SCHEDULE = {
    "monitor-models": {"task": "classifier.monitor_models", "schedule": float(PENGUIN_MONITOR_INTERVAL)},
}

# Rate-limit counts go to Redis in batches of up to this many requests per client and worker
# (never more than 1% of the limit), instead of one round trip per request: a client may get
# at most (workers × batch) requests past its limit per window. 1: every request is counted
# in Redis as it comes.
PENGUIN_THROTTLE_BATCH = env_int("PENGUIN_THROTTLE_BATCH", 50, minimum=1)
# The predict doors (POST /classify/<name>, /api/v1/models/<name>/predict) answer a caller
# that sends no cookie and no Authorization header through a lean path: no session, CSRF,
# auth or message middleware, no DRF request wrapper or content negotiation, orjson in and
# out. Same answers, limits and errors; off runs them through the full stack.
PENGUIN_LEAN_PREDICT = env_bool("PENGUIN_LEAN_PREDICT", True)
# On the lean path, POST /classify/<name> is answered at the WSGI level, below Django's
# handler (penguinsite/classify_door.py); anything but a 200 or a failed log write still
# goes through Django. Off: the lean DRF path answers it too.
PENGUIN_CLASSIFY_DOOR = env_bool("PENGUIN_CLASSIFY_DOOR", True)

# Bodies larger than this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("PENGUIN_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)

# --- Cache (API rate limits) -------------------------------------------------------------
# The throttles count requests in this cache, so every gunicorn worker must share it:
# Redis whenever one is configured (PENGUIN_CACHE_URL, else the Redis broker), else the
# process-local memory cache of the embedded default.
_cache_url = env_str("PENGUIN_CACHE_URL") or (
    CELERY_BROKER_URL if urlparse(CELERY_BROKER_URL).scheme in {"redis", "rediss"} else ""
)
if _cache_url:
    _check_url("PENGUIN_CACHE_URL", _cache_url, {"redis", "rediss"})
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": "penguin",
            # A dead Redis must cost a request milliseconds, not the default minutes.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "penguin"}}


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as ``6000/min``; ``off`` (or empty) disables the limit."""
    raw = (env_str(name) or default).strip()
    if raw.lower() in {"", "off", "none"}:
        return None
    count, sep, period = raw.partition("/")
    if not (sep and count.isdigit() and int(count) > 0 and period[:1] in {"s", "m", "h", "d"}):
        raise ImproperlyConfigured(f"{name}: expected a rate like 6000/min, 100/s or 'off'; got {raw!r}.")
    return raw


# --- REST framework ----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.BoundedJSONParser"],
    # Token first: its WWW-Authenticate header makes an anonymous write 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every API view (compatible endpoints included) is rate-limited per client IP or user.
    "DEFAULT_THROTTLE_CLASSES": [
        "core.api.throttling.AnonRateThrottle",
        "core.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("PENGUIN_THROTTLE_ANON", "6000/min"),
        "user": env_rate("PENGUIN_THROTTLE_USER", "12000/min"),
    },
    # How many proxies sit in front of gunicorn: 0 ignores X-Forwarded-For, so a client
    # cannot dodge its rate limit by sending a made-up address.
    "NUM_PROXIES": env_int("PENGUIN_NUM_PROXIES", 0, minimum=0),
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "core.api.handlers.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Penguin Classifier API",
    "DESCRIPTION": (
        "Trains, versions and serves scikit-learn classifiers for the Palmer penguin species. "
        "Species ids: 1=Adelie, 2=Chinstrap, 3=Gentoo. Island: 1=Torgersen, 2=Biscoe, 3=Dream "
        "(or the name). Sex: 0=female, 1=male (or the name)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs pages load their scripts from our static files, never from another host.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge: Swagger UI would ask an online validator about the schema.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    # Stable names for the choice sets that share a field name (status) or a value list.
    "ENUM_NAME_OVERRIDES": {
        "SpeciesNameEnum": "core.encoding.SPECIES_NAMES",
        "VersionStatusEnum": ["active", "inactive", "broken"],
        "ModelReadinessEnum": ["ready", "broken"],
        "TrainingRunStatusEnum": "training.models.TrainingRun.Status",
        "TensorDatatypeEnum": "classifier.api.v2.serializers.DATATYPES",
        "OutputDatatypeEnum": "classifier.api.v2.serializers.OUTPUT_DATATYPES",
        "OutputNameEnum": "classifier.api.v2.serializers.OUTPUT_NAMES",
    },
    # API v1 routes take an optional trailing slash; document them without it.
    "PREPROCESSING_HOOKS": ["core.api.schema.strip_optional_trailing_slash"],
    # Every API view is rate-limited: document the 429 (with Retry-After) on each operation,
    # and give every error response an example.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.complete_error_responses",
        "core.api.schema.require_one_of_request_bodies",
        # Each algorithm's estimator parameters, as training.params accepts them.
        "training.params.document_training_params",
    ],
}

# --- Static files, i18n, logging ---------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' folders when collectstatic has not run (tests, laptops).
WHITENOISE_USE_FINDERS = not (STATIC_ROOT / "admin").exists()
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# One JSON object per line, tagged with the request id (penguinsite/logs.py); gunicorn's
# error and access logs use the same formatter. Unset, a terminal gets plain lines instead
# (a command run by hand, e.g. train_model's table, is read by a person, not a collector).
_log_format_default = "text" if sys.stderr.isatty() else "json"
_log_format = (env_str("PENGUIN_LOG_FORMAT", _log_format_default) or _log_format_default).strip().lower()
if _log_format not in {"json", "text"}:
    raise ImproperlyConfigured(f"PENGUIN_LOG_FORMAT: expected json or text; got {_log_format!r}.")
LOGGING_CONFIG = "penguinsite.logs.configure"  # dictConfig + Python warnings as log lines
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "penguinsite.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": _log_format}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# --- Production hardening (active whenever DEBUG is off) --------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
    SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
    if env_bool("DJANGO_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Probes and the Prometheus scraper talk plain HTTP to the container from inside the
    # network; redirecting them to https would make a healthy service look down.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
