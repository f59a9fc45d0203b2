"""Settings, read from environment variables.

Two modes:

* ``CONSOLE_MODE=embedded`` (the default): one machine, no servers. SQLite,
  the kombu filesystem broker, and development secrets generated once into
  ``var/embedded-secrets.json``.
* ``CONSOLE_MODE=production``: every secret must come from the environment;
  the process refuses to start without them.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kombu import Queue

from console.artifact_storage import artifact_storage
from console.env import ImproperEnvironment, env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONSOLE_VAR_DIR", str(BASE_DIR / "var")))

CONSOLE_MODE = env_str("CONSOLE_MODE", "embedded")
if CONSOLE_MODE not in {"embedded", "production"}:
    raise ImproperEnvironment(f"CONSOLE_MODE={CONSOLE_MODE!r}: use embedded or production")
PRODUCTION = CONSOLE_MODE == "production"


def _new_embedded_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode(),
        "AUDIT_CHAIN_KEYS": secrets.token_urlsafe(32),
        "AUDIT_CHECKPOINT_SIGNING_KEY": base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode(),
    }


def _embedded_secrets() -> dict[str, str]:
    """Development secrets, generated once and kept beside the SQLite file.

    A file written by an older version gains the secrets it lacks, and keeps
    those it has: a new audit chain key would make every sealed event look
    forged. Web server, worker and beat start together, so the file is
    completed under a lock, by one of them.
    """
    path = VAR_DIR / "embedded-secrets.json"
    wanted = _new_embedded_secrets().keys()
    if path.exists():
        values = dict(json.loads(path.read_text()))
        if wanted <= values.keys():
            return values
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with (VAR_DIR / "embedded-secrets.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        values = dict(json.loads(path.read_text())) if path.exists() else {}
        values = {**_new_embedded_secrets(), **values}
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(json.dumps(values))
        partial.replace(path)
    return values


def _secret(name: str) -> str:
    value = env_str(name)
    if value:
        return value
    if PRODUCTION:
        raise ImproperEnvironment(f"{name} must be set when CONSOLE_MODE=production")
    return _embedded_secrets()[name]


# Least privilege by process (docs/security.md). A builder runs the jobs
# that run package code (build, verify: in the sandbox) and holds no token
# key ring; a publisher runs every other job (upload, workflow dispatch and
# tracking, webhook, scan) and beat's tasks, and never runs package code;
# "all" is both, for one machine and the tests.
WORKER_ROLE = env_choice("WORKER_ROLE", "all", {"builder", "publisher", "all"})
BUILDER_ONLY = WORKER_ROLE == "builder"

SECRET_KEY = _secret("SECRET_KEY")
# The key ring that encrypts index and GitHub tokens at rest. Comma
# separated Fernet keys; the first encrypts, all decrypt (rotation). A
# builder never loads it, and in production refuses to start with it.
if BUILDER_ONLY and PRODUCTION and env_str("CONSOLE_TOKEN_KEYS"):
    raise ImproperEnvironment(
        "CONSOLE_TOKEN_KEYS is set for a builder (WORKER_ROLE=builder): a builder runs package code and must not "
        "hold the token key ring. Remove it from the builder's environment (docs/security.md)."
    )
CONSOLE_TOKEN_KEYS = (
    [] if BUILDER_ONLY else [key.strip() for key in _secret("CONSOLE_TOKEN_KEYS").split(",") if key.strip()]
)
if PRODUCTION and SECRET_KEY in CONSOLE_TOKEN_KEYS:
    raise ImproperEnvironment("CONSOLE_TOKEN_KEYS must not reuse SECRET_KEY")


def _ed25519_key(name: str, value: str) -> str:
    """An Ed25519 key as base64 of its 32 raw bytes, checked here so a bad one stops start-up."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ImproperEnvironment(f"{name} holds a value that is not an Ed25519 key (base64 of 32 bytes)")
    return value


# The audit trail (docs/audit.md). Each event is sealed with a keyed hash
# (HMAC-SHA256) under the first key of AUDIT_CHAIN_KEYS; every key of the
# ring verifies the events it sealed, so rotation puts a new key first and
# keeps the old ones. The keys never go into the database: whoever can
# rewrite the table cannot recompute a seal.
AUDIT_CHAIN_KEYS = [key.strip() for key in _secret("AUDIT_CHAIN_KEYS").split(",") if key.strip()]
if not AUDIT_CHAIN_KEYS:
    raise ImproperEnvironment("AUDIT_CHAIN_KEYS must hold at least one key")
if any(len(key) < 32 for key in AUDIT_CHAIN_KEYS):
    raise ImproperEnvironment("each key in AUDIT_CHAIN_KEYS must be at least 32 characters (secrets.token_urlsafe(32))")
if len(set(AUDIT_CHAIN_KEYS)) != len(AUDIT_CHAIN_KEYS):
    raise ImproperEnvironment("AUDIT_CHAIN_KEYS lists the same key twice")
if SECRET_KEY in AUDIT_CHAIN_KEYS or set(CONSOLE_TOKEN_KEYS) & set(AUDIT_CHAIN_KEYS):
    raise ImproperEnvironment("AUDIT_CHAIN_KEYS must not reuse SECRET_KEY or a key of CONSOLE_TOKEN_KEYS")
# Checkpoints of the chain head are signed with this Ed25519 private key
# (base64 of its 32 raw bytes); verifiers need only its public key
# (`manage.py audit_checkpoint --public-key`). Public keys of signing keys
# used before a rotation go in AUDIT_CHECKPOINT_PUBLIC_KEYS, so that the
# checkpoints they signed still count.
AUDIT_CHECKPOINT_SIGNING_KEY = _ed25519_key("AUDIT_CHECKPOINT_SIGNING_KEY", _secret("AUDIT_CHECKPOINT_SIGNING_KEY"))
if AUDIT_CHECKPOINT_SIGNING_KEY in {SECRET_KEY, *CONSOLE_TOKEN_KEYS, *AUDIT_CHAIN_KEYS}:
    raise ImproperEnvironment("AUDIT_CHECKPOINT_SIGNING_KEY must not reuse another secret")
AUDIT_CHECKPOINT_PUBLIC_KEYS = [
    _ed25519_key("AUDIT_CHECKPOINT_PUBLIC_KEYS", key) for key in env_list("AUDIT_CHECKPOINT_PUBLIC_KEYS")
]
# Where signed checkpoints of the audit chain's head go, every
# AUDIT_CHECKPOINT_INTERVAL seconds once the chain has grown: JSON lines
# appended to a file in AUDIT_CHECKPOINT_DIR (empty: none), a mail to
# AUDIT_CHECKPOINT_EMAILS, and/or a POST to AUDIT_CHECKPOINT_WITNESS_URL. In
# production the folder is outside the console's var/ by default: mount
# storage there that the database's administrators cannot rewrite.
AUDIT_CHECKPOINT_INTERVAL = env_int("AUDIT_CHECKPOINT_INTERVAL", 3600, minimum=1)
AUDIT_CHECKPOINT_DIR = env_str(
    "AUDIT_CHECKPOINT_DIR",
    "/var/lib/release-console/audit-checkpoints" if PRODUCTION else str(VAR_DIR / "audit-checkpoints"),
)
AUDIT_CHECKPOINT_EMAILS = env_list("AUDIT_CHECKPOINT_EMAILS")
AUDIT_CHECKPOINT_WITNESS_URL = env_str("AUDIT_CHECKPOINT_WITNESS_URL")
AUDIT_CHECKPOINT_WITNESS_TOKEN = env_str("AUDIT_CHECKPOINT_WITNESS_TOKEN")
if AUDIT_CHECKPOINT_WITNESS_URL and not AUDIT_CHECKPOINT_WITNESS_URL.startswith(("https://", "http://")):
    raise ImproperEnvironment("AUDIT_CHECKPOINT_WITNESS_URL must be an http or https URL")
if PRODUCTION and not (AUDIT_CHECKPOINT_DIR or AUDIT_CHECKPOINT_EMAILS or AUDIT_CHECKPOINT_WITNESS_URL):
    raise ImproperEnvironment(
        "set at least one of AUDIT_CHECKPOINT_DIR, AUDIT_CHECKPOINT_EMAILS, AUDIT_CHECKPOINT_WITNESS_URL "
        "when CONSOLE_MODE=production"
    )
# The upgrade that seals an existing chain refuses a chain that does not
# verify. Set for one `migrate` to seal the events before the first broken
# link and leave the rest unsealed, so that audit_verify goes on naming it.
AUDIT_UPGRADE_ACCEPT_BROKEN_CHAIN = env_bool("AUDIT_UPGRADE_ACCEPT_BROKEN_CHAIN", default=False)


DEBUG = env_bool("DEBUG", default=False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # Django's admin on releases.admin.ConsoleAdminSite (a verified second factor).
    "releases.admin_apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "releases",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lock-out into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "releases.views.context_processors.sandbox_warning",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if not url:
        if PRODUCTION:
            raise ImproperEnvironment("DATABASE_URL must be set when CONSOLE_MODE=production")
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'console.sqlite3'}"
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60)))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web server, worker and beat share the file: WAL lets readers run
        # beside the writer, IMMEDIATE makes writers queue instead of failing.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["CONN_MAX_AGE"] = 0
    else:
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Sign-in throttling (django-axes): failed attempts are counted per username
# (whatever the address) and per address (whatever the username); when
# either count reaches AXES_FAILURE_LIMIT, that username, or that address,
# is locked out for AXES_COOLOFF_MINUTES. A success clears only its own
# username-and-address pair (releases/services/sign_in.py): axes' own reset
# would clear every failure from the address, letting anyone with a valid
# account wipe the count of the usernames they tried from it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend, but the service account never signs in.
    "releases.auth_backends.ConsoleBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "releases.client_address.client_address"
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The embedded mode serves static files straight from the apps (no collectstatic).
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", default=not PRODUCTION)
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from the apps, but expects the folder

# Built artifacts: a local folder by default (ARTIFACT_ROOT), an S3
# compatible bucket when several hosts share them (ARTIFACT_STORAGE=s3);
# releases/clients/artifacts.py is the one module that reads and writes them.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "artifacts": artifact_storage(VAR_DIR),
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# The largest file a build may make (an sdist or a wheel).
ARTIFACT_MAX_BYTES = env_int("ARTIFACT_MAX_BYTES", 1 << 30, minimum=1 << 20)
# Where jobs get their private temporary folders, and the tool cache (uv's
# wheels and build environments) that every job may safely share.
JOB_WORK_ROOT = Path(env_str("JOB_WORK_ROOT", str(VAR_DIR / "jobs")))
TOOL_CACHE_DIR = Path(env_str("TOOL_CACHE_DIR", str(VAR_DIR / "cache")))
# The index that build back-ends (setuptools, hatchling...) come from.
BUILD_INDEX_URL = env_str("BUILD_INDEX_URL", "https://pypi.org/simple/")
# A project's build environment (its build-system requirements, compiled) is
# kept and reused for this long, then made again; 0 builds every release in a
# fresh isolated environment.
BUILD_ENV_MAX_AGE_HOURS = env_int("BUILD_ENV_MAX_AGE_HOURS", 24)
# Package code (build back-ends, installs, imports) runs in a bubblewrap
# sandbox that sees no secret, no database and no other job. An operator
# whose workers cannot run it may turn it off, with this exact value, and
# every page then says so: package code runs with the worker's rights.
UNSAFE_UNSANDBOXED_BUILDS = (
    env_choice(
        "CONSOLE_UNSAFE_UNSANDBOXED_BUILDS",
        "",
        {"", "package-code-can-read-every-worker-secret"},
    )
    == "package-code-can-read-every-worker-secret"
)

# What one sandboxed command may use: CPU seconds per process, address
# space, processes (a fork bomb stops at this many, and the job fails saying
# so), the largest file it may write, and its private /tmp. Its wall clock
# is JOB_COMMAND_TIMEOUT.
SANDBOX_CPU_SECONDS = env_int("SANDBOX_CPU_SECONDS", 900, minimum=1)
SANDBOX_MEMORY_MB = env_int("SANDBOX_MEMORY_MB", 8192, minimum=256)
SANDBOX_PROCESSES = env_int("SANDBOX_PROCESSES", 512, minimum=16)
SANDBOX_FILE_SIZE_MB = env_int("SANDBOX_FILE_SIZE_MB", 4096, minimum=1)
SANDBOX_TMP_MB = env_int("SANDBOX_TMP_MB", 1024, minimum=1)
# A job's log keeps at most this many characters of what its commands print
# (package code's output), and cuts longer lines; a command that prints
# more is stopped, and its job fails saying so.
JOB_LOG_MAX_CHARS = env_int("JOB_LOG_MAX_CHARS", 32_000_000, minimum=1000)
JOB_LOG_MAX_LINE = env_int("JOB_LOG_MAX_LINE", 10_000, minimum=80)

# Time limits, in seconds.
JOB_COMMAND_TIMEOUT = env_int("JOB_COMMAND_TIMEOUT", 900, minimum=1)
JOB_HEARTBEAT_INTERVAL = env_int("JOB_HEARTBEAT_INTERVAL", 5, minimum=1)
JOB_STALE_AFTER = env_int("JOB_STALE_AFTER", 60, minimum=2)
JOB_REQUEUE_AFTER = env_int("JOB_REQUEUE_AFTER", 30, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
REAPER_INTERVAL = env_int("REAPER_INTERVAL", 30, minimum=1)
# Fairness: a project runs at most this many jobs at once, whatever it has
# queued; the rest wait their turn while other projects' jobs run. Keep it
# below the workers' slots (hosts x concurrency), or one project can still
# fill them all.
PROJECT_MAX_RUNNING_JOBS = env_int("PROJECT_MAX_RUNNING_JOBS", 2, minimum=1)
# Each worker writes a heartbeat row this often; the dashboard counts a
# worker alive for three periods after its last.
WORKER_HEARTBEAT_INTERVAL = env_int("WORKER_HEARTBEAT_INTERVAL", 15, minimum=1)
VERIFY_ATTEMPTS = env_int("VERIFY_ATTEMPTS", 5, minimum=1)
VERIFY_BACKOFF = float(env_int("VERIFY_BACKOFF_MS", 1000)) / 1000
INDEX_WAIT_SECONDS = env_int("INDEX_WAIT_SECONDS", 120, minimum=0)

# Every HTTP client (releases/clients/http.py) asks again after a connection
# error, a 5xx or a 429, HTTP_RETRY_ATTEMPTS times in all, waiting
# HTTP_RETRY_BACKOFF_MS and twice as long each time after, at most
# HTTP_RETRY_MAX_WAIT seconds (Retry-After included).
HTTP_RETRY_ATTEMPTS = env_int("HTTP_RETRY_ATTEMPTS", 4, minimum=1)
HTTP_RETRY_BACKOFF = float(env_int("HTTP_RETRY_BACKOFF_MS", 500)) / 1000
HTTP_RETRY_MAX_WAIT = env_int("HTTP_RETRY_MAX_WAIT", 30)

# GitHub (releases/clients/github.py). Transient answers (5xx, rate limits) are
# retried GITHUB_RETRIES times with exponential backoff; a Retry-After or a
# rate-limit reset is waited for at most GITHUB_MAX_WAIT seconds per retry,
# beyond which the step fails with the time to try again.
GITHUB_TIMEOUT = env_int("GITHUB_TIMEOUT", 15, minimum=1)
GITHUB_RETRIES = env_int("GITHUB_RETRIES", 5)
GITHUB_RETRY_BACKOFF = float(env_int("GITHUB_RETRY_BACKOFF_MS", 1000)) / 1000
GITHUB_MAX_WAIT = env_int("GITHUB_MAX_WAIT", 120)
GITHUB_THROTTLE = float(env_int("GITHUB_THROTTLE_MS", 250)) / 1000
# Tracking a dispatched run: the first poll after GITHUB_POLL_INTERVAL,
# each next one twice as late, up to GITHUB_POLL_MAX; a run still not
# finished after GITHUB_RUN_TIMEOUT fails the deployment.
GITHUB_POLL_INTERVAL = float(env_int("GITHUB_POLL_INTERVAL_MS", 5000, minimum=1)) / 1000
GITHUB_POLL_MAX = float(env_int("GITHUB_POLL_MAX_MS", 60000, minimum=1)) / 1000
GITHUB_RUN_TIMEOUT = env_int("GITHUB_RUN_TIMEOUT", 3 * 3600, minimum=1)
# How long a dispatch looks for the run it started, and how much earlier
# than our clock GitHub's may date that run.
GITHUB_FIND_RUN_TIMEOUT = env_int("GITHUB_FIND_RUN_TIMEOUT", 120, minimum=1)
GITHUB_CLOCK_SKEW = env_int("GITHUB_CLOCK_SKEW", 30)
GITHUB_LOGS_MAX_BYTES = env_int("GITHUB_LOGS_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
GITHUB_REFS_CACHE_SECONDS = env_int("GITHUB_REFS_CACHE_SECONDS", 60)
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 1024 * 1024, minimum=1)
# Refused webhook deliveries from one address: the first in each window is
# stored (without its body), later ones only counted on it, and past the
# limit the address is answered 429 without a look at what it sent.
WEBHOOK_REFUSAL_WINDOW = env_int("WEBHOOK_REFUSAL_WINDOW_SECONDS", 60, minimum=1)
WEBHOOK_REFUSALS_PER_WINDOW = env_int("WEBHOOK_REFUSALS_PER_WINDOW", 20, minimum=1)
# The account that asks for what a GitHub webhook starts (a release tag's
# deployments): a releaser that cannot sign in and can never approve.
CONSOLE_SERVICE_ACCOUNT = env_str("CONSOLE_SERVICE_ACCOUNT", "github-webhook") or "github-webhook"
# Wheels collected from CI (a project's wheels workflow): how long a build
# waits for that workflow's run on the release's commit to succeed, and the
# largest artifact archive it downloads.
CI_WHEELS_WAIT_SECONDS = env_int("CI_WHEELS_WAIT_SECONDS", 3600, minimum=0)
CI_ARTIFACT_MAX_BYTES = env_int("CI_ARTIFACT_MAX_BYTES", 2 * 1024 * 1024 * 1024, minimum=1)
# Trusted Publishing of the approved files: the project's workflow downloads
# them from a signed link, good for this many seconds after the dispatch and
# for one download of each file.
PUBLISH_LINK_MAX_AGE = env_int("PUBLISH_LINK_MAX_AGE", 3600, minimum=60)

# PyPI's upload rules (an environment's pypi_rules): what the index says is
# asked again at most every INDEX_RULES_CACHE_SECONDS for the pages (the
# upload itself always asks afresh). Provenance (PEP 740) is verified with
# the Sigstore trust root that sigstore-python ships, without asking
# Sigstore's TUF repository for a newer one unless SIGSTORE_OFFLINE is false.
INDEX_RULES_CACHE_SECONDS = env_int("INDEX_RULES_CACHE_SECONDS", 60)
SIGSTORE_OFFLINE = env_bool("SIGSTORE_OFFLINE", default=True)

# Celery. The database is the source of truth; messages carry only ids.
REDIS_URL = env_str("REDIS_URL")
# With Redis, the cache is shared by every process and host: sessions are
# read from it (a poll of a live page asks the database nothing for them),
# and a sign-out reaches every worker at once. Without it (the embedded
# default), each process keeps its own small cache and sessions stay in the
# database.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "console"),
            "TIMEOUT": 300,
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        # Above the longest job, so that Redis does not hand a running
        # job's message to a second worker.
        "visibility_timeout": env_int("BROKER_VISIBILITY_TIMEOUT", 4 * 3600, minimum=60),
    }
else:
    if PRODUCTION:
        raise ImproperEnvironment("REDIS_URL must be set when CONSOLE_MODE=production")
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "staging", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # Messages are files under var/broker: durable across restarts, no server.
    # kombu's filesystem transport polls once a second, and a worker looking
    # sooner can take a message half written; console/broker.py writes each
    # message whole (a rename) and wakes the worker when one lands (inotify),
    # so a job is claimed within milliseconds at no idle cost. Measured with
    # `python -m bench.claims`: see docs/performance.md.
    CELERY_BROKER_URL = "filesystem://localhost/"  # a host named, or kombu warns on every start
    CELERY_BROKER_TRANSPORT = "console.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        # Where a message is written before it is renamed into the queue.
        "staging_folder": str(_broker_dir / "staging"),
        "processed_folder": str(_broker_dir / "processed"),
        # The exchange table; kombu's default is ./control in the working folder.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Only a fallback now: the worker wakes on each new message.
        "polling_interval": 1.0,
    }
# Two queues: the default one (publisher: the jobs that hold tokens, and
# beat's tasks) and the builders' (the jobs that run package code); a worker
# consumes those of its role (services/jobs.py sends each job to its own).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "console")
CELERY_BUILDER_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.builder"
CELERY_TASK_QUEUES = [
    Queue(name)
    for name, role in ((CELERY_TASK_DEFAULT_QUEUE, "publisher"), (CELERY_BUILDER_QUEUE, "builder"))
    if WORKER_ROLE in {role, "all"}
]
if REDIS_URL:
    # Beat may run on every host: the schedule lives in Redis, and only the
    # beat that holds the lock there sends (console/beat.py). Another takes
    # over within BEAT_LOCK_TIMEOUT seconds of its host's end.
    CELERY_BEAT_SCHEDULER = "console.beat.SingleBeatScheduler"
    CELERY_REDBEAT_REDIS_URL = REDIS_URL
    CELERY_REDBEAT_REDIS_OPTIONS: dict[str, Any] = {}
    CELERY_REDBEAT_KEY_PREFIX = f"{CELERY_TASK_DEFAULT_QUEUE}:beat"
    CELERY_REDBEAT_LOCK_TIMEOUT = env_int("BEAT_LOCK_TIMEOUT", 60, minimum=2)
    # Beat wakes at least this often: to extend its lock, or, waiting, to try for it.
    CELERY_BEAT_MAX_LOOP_INTERVAL = max(1, min(5, CELERY_REDBEAT_LOCK_TIMEOUT // 3))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker rides out a broker restart of any length: it reconnects until the
# broker is back (the default gives up after 100 tries, and the worker exits),
# and a job already running goes on: its row, not its message, is the truth,
# and the reaper resends whatever the broker lost.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Supply chain: vulnerability data, download statistics, credential age.
OSV_API_URL = env_str("OSV_API_URL", "https://api.osv.dev").rstrip("/")
PYPISTATS_API_URL = env_str("PYPISTATS_API_URL", "https://pypistats.org/api").rstrip("/")
SCAN_RETRY_INTERVAL = env_int("SCAN_RETRY_INTERVAL", 900, minimum=10)
CREDENTIAL_MAX_AGE_DAYS = env_int("CREDENTIAL_MAX_AGE_DAYS", 180, minimum=1)
CREDENTIAL_WARN_AGE_DAYS = env_int("CREDENTIAL_WARN_AGE_DAYS", 150, minimum=1)
if CREDENTIAL_WARN_AGE_DAYS > CREDENTIAL_MAX_AGE_DAYS:
    raise ImproperEnvironment("CREDENTIAL_WARN_AGE_DAYS must not exceed CREDENTIAL_MAX_AGE_DAYS")

_DAY = 24 * 3600.0
CELERY_BEAT_SCHEDULE = {
    "reap-jobs": {"task": "releases.tasks.reap", "schedule": float(REAPER_INTERVAL)},
    "scan-unscanned-releases": {"task": "releases.tasks.scan_pending", "schedule": float(SCAN_RETRY_INTERVAL)},
    "credentials-age": {"task": "releases.tasks.credentials_age_check", "schedule": _DAY},
    "vulnerabilities-recheck": {"task": "releases.tasks.vulnerabilities_recheck", "schedule": _DAY},
    "downloads-fetch": {"task": "releases.tasks.downloads_fetch", "schedule": _DAY},
    "audit-checkpoint": {"task": "releases.tasks.audit_checkpoint", "schedule": float(AUDIT_CHECKPOINT_INTERVAL)},
    "failure-reports-flush": {"task": "releases.tasks.failure_reports_flush", "schedule": 60.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "releases.redaction.RedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
        # The S3 client's debug lines carry request headers and bodies.
        "botocore": {"level": "WARNING"},
        "boto3": {"level": "WARNING"},
        "s3transfer": {"level": "WARNING"},
    },
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "release-console@localhost")
# Approval requests are mailed after the request commits, from the web
# process: a mail server that hangs must not hold the page for long.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
# Where the console is reached, for links in emails.
CONSOLE_URL = env_str("CONSOLE_URL", "http://127.0.0.1:8000")

# Four eyes. Off by default: no one, administrators included, pushes
# without the approvals an environment requires. When on, an
# administrator may bypass them, and every bypass is audited.
APPROVALS_ADMIN_BYPASS = env_bool("APPROVALS_ADMIN_BYPASS", default=False)
# Second factor: TOTP devices (authenticator apps), passkeys (WebAuthn) and
# recovery codes. A session's verification counts for
# SECOND_FACTOR_MAX_AGE_HOURS, then approvals and device changes ask again.
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Release console")
OTP_STATIC_RECOVERY_CODES = env_int("OTP_STATIC_RECOVERY_CODES", 10, minimum=1)
SECOND_FACTOR_MAX_AGE_HOURS = env_int("SECOND_FACTOR_MAX_AGE_HOURS", 12, minimum=1)


def _webauthn_origins(rp_id: str) -> list[str]:
    """Where passkeys may be used from: WEBAUTHN_ORIGINS, else the relying
    party's own https origin (http://localhost:8000 in embedded mode)."""
    default = [f"https://{rp_id}"] if PRODUCTION else ["http://localhost:8000"]
    origins = env_list("WEBAUTHN_ORIGINS", default if rp_id else [])
    for origin in origins:
        parts = urlsplit(origin)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "localhost")
        if not secure or not parts.netloc or origin != f"{parts.scheme}://{parts.netloc}":
            raise ImproperEnvironment(
                f"WEBAUTHN_ORIGINS entry {origin!r}: use https://host[:port] (http://localhost:port on one machine), "
                "without a path or a trailing slash"
            )
    return origins


# Passkeys (django-otp-webauthn) are bound to a relying party id, a domain
# (never an IP address), and answer only pages on the allowed origins. In
# production the id defaults to the first ALLOWED_HOSTS name.
WEBAUTHN_RP_ID = env_str(
    "WEBAUTHN_RP_ID", ALLOWED_HOSTS[0].lstrip(".") if PRODUCTION and ALLOWED_HOSTS else "localhost"
)
OTP_WEBAUTHN_RP_ID = WEBAUTHN_RP_ID
OTP_WEBAUTHN_RP_NAME = OTP_TOTP_ISSUER
OTP_WEBAUTHN_ALLOWED_ORIGINS = _webauthn_origins(WEBAUTHN_RP_ID)
# A passkey is a second factor here, never a way to sign in without the password.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False

# The client's address, for throttling, audit events and device-change mails:
# REMOTE_ADDR, unless the console sits behind CLIENT_ADDRESS_PROXIES reverse
# proxies that each append to CLIENT_ADDRESS_HEADER (X-Forwarded-For).
CLIENT_ADDRESS_HEADER = env_str("CLIENT_ADDRESS_HEADER", "").strip()
if CLIENT_ADDRESS_HEADER and not re.fullmatch(r"[A-Za-z0-9-]+", CLIENT_ADDRESS_HEADER):
    raise ImproperEnvironment(f"CLIENT_ADDRESS_HEADER={CLIENT_ADDRESS_HEADER!r} is not a header name (X-Forwarded-For)")
CLIENT_ADDRESS_PROXIES = env_int("CLIENT_ADDRESS_PROXIES", 1, minimum=1)
# Repeated failures (sign-in, second factor) for one username from one
# address write at most one audit event per this many seconds, with a count.
FAILURE_AUDIT_INTERVAL = env_int("FAILURE_AUDIT_INTERVAL_SECONDS", 60, minimum=1)
