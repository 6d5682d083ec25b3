"""Settings for the mixtape server.

Every knob is an environment variable read through ``config.env`` (django-environ
underneath); the README's "Settings" table lists them with their defaults. An invalid
value stops start-up with a message that names the variable.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from . import env
from .paths import is_inside

BASE_DIR = Path(__file__).resolve().parent.parent

# Development convenience only: the Docker image ships no .env and real variables win.
env.read_env_file(BASE_DIR / ".env")

# --- Core -------------------------------------------------------------------------

DEBUG = env.boolean("DEBUG", False)
DATA_ROOT = env.path("DATA_ROOT", BASE_DIR / "data")
MUSIC_ROOT = env.path("MUSIC_ROOT", DATA_ROOT / "music")
try:
    DATA_ROOT.mkdir(parents=True, exist_ok=True)  # the SQLite file, cache and uploads live here
except OSError as exc:
    raise ImproperlyConfigured(f"DATA_ROOT={str(DATA_ROOT)!r} cannot be created: {exc.strerror}.") from None


def _secret_key() -> str:
    """``SECRET_KEY`` from the environment, else one generated once and kept in ``DATA_ROOT``.

    There is no built-in fallback key: a fresh install gets its own random key, and a
    scale-out deployment (several hosts) sets ``SECRET_KEY`` explicitly.
    """
    configured = env.raw("SECRET_KEY")
    if configured is not None:
        if len(configured.strip()) < 32:
            raise ImproperlyConfigured("SECRET_KEY is too short: use at least 32 random characters.")
        return configured.strip()
    key_file = DATA_ROOT / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        pass
    try:
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: two processes starting at
        # once end up with the same key, and nobody ever reads a half-written one.
        draft = DATA_ROOT / f".secret_key.{os.getpid()}"
        with open(draft, "w", opener=lambda p, flags: os.open(p, flags, 0o600)) as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            draft.unlink()
        return key_file.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and {key_file} cannot be created ({exc.strerror}): set SECRET_KEY or make DATA_ROOT writable."
        ) from None


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.string_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.string_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS behind a TLS-terminating proxy (nginx, Caddy, Traefik) ---------------------
# HTTPS=true: trust the proxy's X-Forwarded-Proto, send cookies over HTTPS only, redirect
# plain HTTP and announce HSTS. Off by default: a LAN install on http:// must keep working.
HTTPS = env.boolean("HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env.boolean("SECURE_HSTS_PRELOAD", False)
    # The health probe comes from inside (Docker, the load balancer) over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp): every script, style, image, sound and connection comes
# from this site; no inline script or style anywhere (data in pages travels as json_script blocks,
# which are never executed). Images may also be data: URLs (Bootstrap's form icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_eventstream",
    "axes",
    "csp",
    "mixtapes",
    "audiocache",
    "subsonic",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "subsonic.context_processors.subsonic",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{DATA_ROOT / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # The web process and its workers write concurrently: WAL lets readers go on
            # during a write, IMMEDIATE takes the write lock up front (no upgrade deadlock)
            # and the timeout makes a writer wait instead of failing with "database is locked".
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
    # Tests that start worker processes need a database file those processes can open.
    _sqlite_test_name = env.raw("SQLITE_TEST_NAME")
    if _sqlite_test_name:
        DATABASES["default"]["TEST"] = {"NAME": _sqlite_test_name}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))

# Progress events (django-eventstream): stored in the database for replay on reconnect and
# delivered in-process; with REDIS_URL, audiocache/events/fanout.py tells the other processes
# through Redis (not django-eventstream's Redis mode: see that module for why).
EVENTSTREAM_STORAGE_CLASS = "django_eventstream.storage.DjangoModelStorage"
EVENTSTREAM_CHANNELMANAGER_CLASS = "audiocache.events.access.BatchChannelManager"

# Who may make a mixtape public, i.e. let anyone with its link play its tracks (mixtapes/sharing.py):
# every account, staff accounts only, or nobody.
MIXTAPES_PUBLIC_SHARING = env.choice("MIXTAPES_PUBLIC_SHARING", "all", ("all", "staff", "none"))

# The Subsonic API for phone and desktop apps (subsonic/): on by default; plain passwords (p=)
# are refused over plain HTTP unless this says otherwise (a LAN without TLS).
SUBSONIC_ENABLED = env.boolean("SUBSONIC_ENABLED", True)
SUBSONIC_ALLOW_PLAIN_PASSWORD = env.boolean("SUBSONIC_ALLOW_PLAIN_PASSWORD", False)

# --- Auth, i18n ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Failed logins (django-axes): after LOGIN_FAILURE_LIMIT failures for one username, or from one
# address, that username or address may not log in for LOGIN_LOCKOUT_MINUTES. This covers the
# login page and the admin's; staff see and clear the attempts in the admin ("Axes"), or run
# `manage.py axes_reset`. The client address is uvicorn's (it reads X-Forwarded-For only from
# the proxies --forwarded-allow-ips names).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env.integer("LOGIN_FAILURE_LIMIT", 10, minimum=1, maximum=1000)
LOGIN_LOCKOUT_MINUTES = env.integer("LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # one warning per lockout is enough (axes logs every failure otherwise)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.string("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files ------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_ROOT / "media"
# Mixtape covers: uploads above this size are refused; accepted ones are re-encoded as JPEG
# no larger than COVER_MAX_PIXELS on a side (mixtapes/covers.py).
COVER_MAX_UPLOAD_SIZE = env.byte_size("COVER_MAX_UPLOAD_SIZE", 10 * 1024 * 1024)
COVER_MAX_PIXELS = env.integer("COVER_MAX_PIXELS", 1200, minimum=64, maximum=4000)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG else "config.storage.StaticFilesStorage"
        )
    },
}

# A page must not fail because collectstatic was not run (e.g. DEBUG=false from a checkout):
# unknown names fall back to their plain URL (config/storage.py), which WhiteNoise then serves
# from the source folders until a manifest exists.
WHITENOISE_MANIFEST_STRICT = False
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").exists()

# --- Audio cache (names and defaults from the seed design) -------------------------

AUDIO_CACHE_DIR = env.path("AUDIO_CACHE_DIR", DATA_ROOT / "cache" / "audio")
AUDIO_CACHE_ENABLED = env.boolean("AUDIO_CACHE_ENABLED", True)
# Quality names are the audio cache's: it checks these two when it starts (audiocache/apps.py).
AUDIO_CACHE_DEFAULT_QUALITY = env.string("AUDIO_CACHE_DEFAULT_QUALITY", "medium").lower()
# 0 means "no workers inside the web process" (scale-out: run manage.py cacheworker).
AUDIO_CACHE_MAX_WORKERS = env.integer("AUDIO_CACHE_MAX_WORKERS", 4, minimum=0, maximum=64)
AUDIO_CACHE_PRECACHE_ON_UPLOAD = env.boolean("AUDIO_CACHE_PRECACHE_ON_UPLOAD", True)
# Qualities, or format:quality pairs (mp3:medium,opus:medium); a bare quality is MP3.
AUDIO_CACHE_PRECACHE_QUALITIES = list(
    dict.fromkeys(q.lower() for q in env.string_list("AUDIO_CACHE_PRECACHE_QUALITIES", ["medium"]))
)
# The formats renditions may be made in (MP3 always: every player plays it, it is the fallback).
AUDIO_CACHE_FORMATS = list(
    dict.fromkeys(f.lower() for f in env.string_list("AUDIO_CACHE_FORMATS", ["mp3", "opus", "aac"]))
)
AUDIO_CACHE_MAX_SIZE = env.byte_size("AUDIO_CACHE_MAX_SIZE", 0)
AUDIO_CACHE_MAX_AGE_DAYS = env.integer("AUDIO_CACHE_MAX_AGE_DAYS", 0, minimum=0)
AUDIO_CACHE_TRANSCODE_TIMEOUT = env.integer("AUDIO_CACHE_TRANSCODE_TIMEOUT", 900, minimum=1)
AUDIO_CACHE_FFMPEG = env.string("AUDIO_CACHE_FFMPEG", "ffmpeg")
AUDIO_CACHE_FFPROBE = env.string("AUDIO_CACHE_FFPROBE", "ffprobe")
# The queue: attempts before a task stays failed, first retry delay (doubles each time), and
# how long a worker's claim lasts without a heartbeat before another worker may take the task.
AUDIO_CACHE_MAX_ATTEMPTS = env.integer("AUDIO_CACHE_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
AUDIO_CACHE_RETRY_DELAY = env.integer("AUDIO_CACHE_RETRY_DELAY", 30, minimum=0)
AUDIO_CACHE_LEASE_SECONDS = env.integer("AUDIO_CACHE_LEASE_SECONDS", 60, minimum=2)
AUDIO_CACHE_SENDFILE = env.choice("AUDIO_CACHE_SENDFILE", "none", ("none", "nginx"))
# On a miss, stream the MP3 while it is being made (audiocache/services/following.py), waiting at most
# this long for the transcode to start before serving the original instead.
AUDIO_CACHE_PROGRESSIVE = env.boolean("AUDIO_CACHE_PROGRESSIVE", True)
AUDIO_CACHE_PROGRESSIVE_WAIT = env.seconds("AUDIO_CACHE_PROGRESSIVE_WAIT", 3.0, maximum=60)


# Track pictures made small (mixtapes/artwork.py): thumbnails, never under MUSIC_ROOT.
ARTWORK_DIR = env.path("ARTWORK_DIR", DATA_ROOT / "cache" / "artwork")


def _check_cache_dir() -> None:
    """The cache folder is ours to delete files in: it must not overlap the music, the uploads
    or the static files, nor hold DATA_ROOT (inside DATA_ROOT, the default, is fine)."""
    cache = os.path.realpath(AUDIO_CACHE_DIR)
    for name, value in (
        ("MUSIC_ROOT", MUSIC_ROOT), ("MEDIA_ROOT", MEDIA_ROOT), ("STATIC_ROOT", STATIC_ROOT), ("ARTWORK_DIR", ARTWORK_DIR),
    ):  # fmt: skip
        other = os.path.realpath(value)
        if is_inside(cache, other) or is_inside(other, cache):
            raise ImproperlyConfigured(
                f"AUDIO_CACHE_DIR={str(AUDIO_CACHE_DIR)!r} overlaps {name}={str(value)!r}: use a folder of its own."
            )
    if is_inside(os.path.realpath(ARTWORK_DIR), os.path.realpath(MUSIC_ROOT)):
        raise ImproperlyConfigured(f"ARTWORK_DIR={str(ARTWORK_DIR)!r} is inside MUSIC_ROOT, which is never written.")
    if is_inside(os.path.realpath(DATA_ROOT), cache):
        raise ImproperlyConfigured(
            f"AUDIO_CACHE_DIR={str(AUDIO_CACHE_DIR)!r} holds DATA_ROOT={str(DATA_ROOT)!r}: use a folder of its own."
        )


_check_cache_dir()

# How many files scanlibrary probes at once. Most are read in-process from their headers
# (mutagen, mostly waiting on the disk); the rest start an ffprobe process each, which spends
# most of its ~65 ms starting up, so two per CPU keep every core busy.
LIBRARY_SCAN_WORKERS = env.integer("LIBRARY_SCAN_WORKERS", 2 * (os.cpu_count() or 2), minimum=1, maximum=64)

# The library keeps itself in step (mixtapes/watcher.py): inotify through watchfiles where it
# works, a periodic rescan where it cannot (network mounts, too many folders) or as well.
# It runs where the workers run, in one process at a time (docs in the README).
LIBRARY_WATCH = env.boolean("LIBRARY_WATCH", True)
LIBRARY_RESCAN_INTERVAL = env.interval("LIBRARY_RESCAN_INTERVAL", 0)
# With watching on but impossible, rescan this often even when LIBRARY_RESCAN_INTERVAL is 0.
LIBRARY_FALLBACK_RESCAN_INTERVAL = 3600

# --- Logging ------------------------------------------------------------------------

LOG_LEVEL = env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
# plain: "time LEVEL logger message"; json: one JSON object per line, with the structured
# fields some messages carry (a transcode: task, track, quality, result, seconds, bytes).
LOG_FORMAT = env.choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # django-axes logs every login at INFO; lockouts and failures come at WARNING.
        "axes": {"level": "WARNING"},
    },
}
