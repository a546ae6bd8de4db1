"""Settings for the provisioning service.

Everything an operator sets comes from the environment (see README, "Configuration"). Unset means the
embedded default: SQLite, the kombu filesystem broker and the local provider under DATA_DIR, so that
one command runs the whole service on a fresh machine with no server.
"""

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from provisioning.env import (
    env_bool,
    env_choice,
    env_float,
    env_hostports,
    env_int,
    env_list,
    env_networks,
    env_port_range,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)  # services on the local target must not read it


def _embedded_secret_key() -> str:
    # A key of our own, kept beside the embedded database so that sessions survive a restart.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or _embedded_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_results",
    "provisioning",
    "provisioning.applications",
    "provisioning.orders",
    "bookings",
    "images",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "provisioning.middleware.DatabaseUnavailableMiddleware",
    "provisioning.middleware.BodySizeLimitMiddleware",
    "provisioning.middleware.QueryNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "provisioning.urls"
WSGI_APPLICATION = "provisioning.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                # Without IMMEDIATE, two workers that read then write (chord members finishing together)
                # fail with "database is locked" instead of waiting for each other.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)

# --- Cache (rate-limit counters) ------------------------------------------------------------------
# Counters must be shared by every web process: Redis when there is one, else files beside the
# embedded database (several gunicorn workers of the embedded service see the same files).
CACHE_URL = env_str("CACHE_URL") or (
    env_str("CELERY_BROKER_URL") if env_str("CELERY_BROKER_URL").startswith("redis") else ""
)
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": DATA_DIR / "cache",
            "TIMEOUT": 86400,  # incr() re-sets an entry with the default timeout: keep it past a window
        }
    }

# --- Rate limits per customer (count/period, or off) -----------------------------------------------
# Creations a customer may start per period, whoever of its users asks, through the API or a wizard.
RATE_LIMIT_BOOKING_ITEMS = env_rate("RATE_LIMIT_BOOKING_ITEMS", "60/minute")
RATE_LIMIT_IMAGE_BUILDS = env_rate("RATE_LIMIT_IMAGE_BUILDS", "10/minute")

# --- Environment orders ---------------------------------------------------------------------------
# Ports the services of environment orders listen on (the other ORDERS_* settings:
# provisioning.orders.conf, which reads them when an order needs them).
ORDERS_PORT_RANGE = env_port_range("ORDERS_PORT_RANGE", (21000, 21999))

# --- Production hardening (manage.py check --deploy) -----------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and bool(DATABASE_URL))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Load balancers and Prometheus talk to gunicorn directly, over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Mail (authorizer notifications) ---------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = DATA_DIR / "mail"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "provisioning@localhost")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

# --- REST API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request is then answered 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "provisioning.api.schema.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "provisioning.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "provisioning.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Provisioning service",
    "DESCRIPTION": "Orders for hosting products and cloud resources, each run as a durable saga.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set that several serializers share (else: warnings in check --deploy).
    "ENUM_NAME_OVERRIDES": {
        "OperationStateEnum": "provisioning.choices.OperationState",
        "BookingItemTypeEnum": "bookings.choices.BookingItemType",
        "ApplicationProviderEnum": "provisioning.applications.choices.Provider",
        "CloudProviderEnum": "images.choices.ProviderName",
    },
}

# --- Celery -----------------------------------------------------------------------------------------
PROVIDERS = ["local", "aws"]
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or "django-db"
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    # Our fix of kombu's filesystem transport (provisioning/broker.py: half-written messages are never
    # read, unreadable ones are quarantined instead of stopping the worker).
    CELERY_BROKER_TRANSPORT = "provisioning.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
elif CELERY_BROKER_URL.startswith("sqla+"):
    # kombu's SQLAlchemy transport hands its options to create_engine (python -m provisioning.bench_broker).
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
elif CELERY_BROKER_URL.startswith(("amqp://", "pyamqp://")):
    # RabbitMQ gives a killed worker's unacknowledged messages back at once (its connection closes),
    # so it needs no visibility timeout. Publisher confirms: an enqueue after commit has reached the
    # broker, or it raised (logged; the sweeper sends the row's work again). Classic durable queues,
    # not quorum: see README, "Several machines".
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
else:
    # Long waits live in the database (next_run_at + sweeper), so no message is ever held this long;
    # a message of a worker killed mid-task comes back after this, and the sweeper re-drives sooner.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
CELERY_TASK_DEFAULT_QUEUE = "default"
# A worker started without -Q consumes every queue the service uses: one per provider plus default.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in ["default", *PROVIDERS]]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4, minimum=1)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_RESULT_CHORD_EXPIRES = 3600
CELERY_RESULT_EXTENDED = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_TRACK_STARTED = False
# Celery closes the database connection around every task unless this is set: a new PostgreSQL backend
# for every task was a fifth of a step's cost. Connections are kept as Django keeps them for requests
# instead (provisioning.celery: CONN_MAX_AGE, health checks, dropped when broken).
CELERY_DB_REUSE_MAX = 1_000_000

# --- The saga engine --------------------------------------------------------------------------------
SAGA_SWEEP_INTERVAL = env_float("SAGA_SWEEP_INTERVAL", 2.0, minimum=0.1)
# A queued step whose message has not started after this long is taken as lost and sent again.
SAGA_REDRIVE_AFTER = env_float("SAGA_REDRIVE_AFTER", 30.0, minimum=0.5)
# A running step whose heartbeat is older than this is taken as dead (worker killed) and re-driven.
SAGA_HEARTBEAT_TIMEOUT = env_float("SAGA_HEARTBEAT_TIMEOUT", 60.0, minimum=0.5)
# Retry delays up to this many seconds go out as a Celery countdown; longer ones wait for the sweeper.
SAGA_COUNTDOWN_MAX = env_float("SAGA_COUNTDOWN_MAX", 10.0, minimum=0.0)
SAGA_SWEEP_BATCH = env_int("SAGA_SWEEP_BATCH", 500, minimum=1)
# How often the sweeper looks again at an operation held because its definition is gone.
SAGA_HELD_RECHECK = env_float("SAGA_HELD_RECHECK", 300.0, minimum=0.5)

# Idempotency-Key: how long a key and its first answer are kept (beat forgets them after), and how
# long a request may hold a key unanswered before a repeat takes it over (its process died).
IDEMPOTENCY_KEY_TTL = env_float("IDEMPOTENCY_KEY_TTL", 86400.0, minimum=60.0)
IDEMPOTENCY_PROCESSING_TIMEOUT = env_float("IDEMPOTENCY_PROCESSING_TIMEOUT", 120.0, minimum=1.0)

CELERY_BEAT_SCHEDULE = {
    # Any number of beats may run (every machine, or `worker -B`): the task ticks once per interval.
    # A tick not taken within two intervals (no worker) is dropped, not piled up for later.
    "saga-sweep": {
        "task": "provisioning.sweep",
        "schedule": SAGA_SWEEP_INTERVAL,
        "options": {"expires": 2 * SAGA_SWEEP_INTERVAL},
    },
    "idempotency-keys-purge": {"task": "provisioning.idempotency_keys_purge", "schedule": 600.0},
}

# --- Providers and outside services -----------------------------------------------------------------
DNS_NAMESERVERS = env_hostports("DNS_NAMESERVERS")
# The key of the domain verification codes (an HMAC of customer and domain); empty: derived from SECRET_KEY.
BOOKINGS_VERIFICATION_SECRET = env_str("BOOKINGS_VERIFICATION_SECRET")
AWS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL") or None
LOCAL_PROVIDER_DIR = DATA_DIR / "local-provider"

# --- Operations: health, metrics, logs --------------------------------------------------------------
# Every worker writes a heartbeat row this often; one not heard of for three intervals counts as gone.
WORKER_HEARTBEAT_INTERVAL = env_float("WORKER_HEARTBEAT_INTERVAL", 10.0, minimum=0.5)
# /health/ answers 503 when one of these queues has no live worker (default: every queue).
HEALTH_QUEUES = env_list("HEALTH_QUEUES", [queue.name for queue in CELERY_TASK_QUEUES])
if unknown := sorted(set(HEALTH_QUEUES) - {queue.name for queue in CELERY_TASK_QUEUES}):
    raise ImproperlyConfigured(f"HEALTH_QUEUES names queues the service does not use: {', '.join(unknown)}.")
# /metrics answers a scraper from these networks, a request with `Authorization: Bearer METRICS_TOKEN`,
# or a logged-in hostmaster; anybody else gets 403.
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Step durations, attempts and finished operations are counted over this many recent seconds.
METRICS_WINDOW = env_int("METRICS_WINDOW", 300, minimum=10, maximum=86400)

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ["debug", "info", "warning", "error", "critical"]).upper()
# json: one JSON object per line; text: key=value. Both carry the operation id and mask secrets.
LOG_FORMAT = env_choice("LOG_FORMAT", "json", ["json", "text"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "provisioning.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "provisioning.logs.JsonFormatter"},
        "text": {"()": "provisioning.logs.KeyValueFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Their debug lines carry signed request headers (an account's access key id) and bodies.
        "botocore": {"level": "INFO"},
        "boto3": {"level": "INFO"},
        "urllib3": {"level": "INFO"},
    },
}
