"""Settings come from the environment, and a bad value stops start-up naming the variable."""

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env
from tests.conftest import REPO

SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({k: str(getattr(s, k)) for k in "
    "['DEBUG','DATA_ROOT','MUSIC_ROOT','AUDIO_CACHE_DIR','AUDIO_CACHE_ENABLED','AUDIO_CACHE_DEFAULT_QUALITY',"
    "'AUDIO_CACHE_MAX_WORKERS','AUDIO_CACHE_PRECACHE_ON_UPLOAD','AUDIO_CACHE_PRECACHE_QUALITIES',"
    "'AUDIO_CACHE_MAX_SIZE','AUDIO_CACHE_MAX_AGE_DAYS','AUDIO_CACHE_TRANSCODE_TIMEOUT','AUDIO_CACHE_FFMPEG',"
    "'AUDIO_CACHE_FFPROBE','AUDIO_CACHE_SENDFILE','REDIS_URL','ALLOWED_HOSTS']}))"
)


def python(tmp_path, *args, **env_vars):
    """Run Python in ``tmp_path`` with the real settings module and only the given app variables."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIO_CACHE_", "DJANGO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "DEBUG", "MUSIC_ROOT", "SECRET_KEY", "ALLOWED_HOSTS"):
        environment.pop(name, None)
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DATA_ROOT": str(tmp_path / "data"), **env_vars})
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60
    )


def manage(tmp_path, *args, **env_vars):
    return python(tmp_path, "manage.py", *args, **env_vars)


@pytest.fixture
def checkout(tmp_path):
    """manage.py is run from a folder without a .env, so a developer's .env cannot leak in."""
    (tmp_path / "manage.py").symlink_to(REPO / "manage.py")
    for package in ("config", "mixtapes", "audiocache", "templates", "static"):
        (tmp_path / package).symlink_to(REPO / package)
    return tmp_path


def test_defaults(checkout):
    result = manage(checkout, "shell", "-c", SHOW_SETTINGS)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    data = checkout / "data"
    assert values == {
        "DEBUG": "False",
        "DATA_ROOT": str(data),
        "MUSIC_ROOT": str(data / "music"),
        "AUDIO_CACHE_DIR": str(data / "cache" / "audio"),
        "AUDIO_CACHE_ENABLED": "True",
        "AUDIO_CACHE_DEFAULT_QUALITY": "medium",
        "AUDIO_CACHE_MAX_WORKERS": "4",
        "AUDIO_CACHE_PRECACHE_ON_UPLOAD": "True",
        "AUDIO_CACHE_PRECACHE_QUALITIES": "['medium']",
        "AUDIO_CACHE_MAX_SIZE": "0",
        "AUDIO_CACHE_MAX_AGE_DAYS": "0",
        "AUDIO_CACHE_TRANSCODE_TIMEOUT": "900",
        "AUDIO_CACHE_FFMPEG": "ffmpeg",
        "AUDIO_CACHE_FFPROBE": "ffprobe",
        "AUDIO_CACHE_SENDFILE": "none",
        "REDIS_URL": "",
        "ALLOWED_HOSTS": "['localhost', '127.0.0.1', '[::1]']",
    }


def test_every_setting_is_read_from_the_environment(checkout, tmp_path):
    result = manage(
        checkout,
        "shell",
        "-c",
        SHOW_SETTINGS,
        DEBUG="yes",
        MUSIC_ROOT="/srv/music",
        AUDIO_CACHE_DIR="/srv/cache",
        AUDIO_CACHE_ENABLED="off",
        AUDIO_CACHE_DEFAULT_QUALITY="HIGH",
        AUDIO_CACHE_MAX_WORKERS="0",
        AUDIO_CACHE_PRECACHE_ON_UPLOAD="false",
        AUDIO_CACHE_PRECACHE_QUALITIES="low, high,low",
        AUDIO_CACHE_MAX_SIZE="1.5G",
        AUDIO_CACHE_MAX_AGE_DAYS="30",
        AUDIO_CACHE_TRANSCODE_TIMEOUT="60",
        AUDIO_CACHE_FFMPEG="/opt/ffmpeg/bin/ffmpeg",
        AUDIO_CACHE_FFPROBE="/opt/ffmpeg/bin/ffprobe",
        AUDIO_CACHE_SENDFILE="nginx",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="music.example.org, localhost",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] == "True"
    assert values["MUSIC_ROOT"] == "/srv/music"
    assert values["AUDIO_CACHE_DIR"] == "/srv/cache"
    assert values["AUDIO_CACHE_ENABLED"] == "False"
    assert values["AUDIO_CACHE_DEFAULT_QUALITY"] == "high"
    assert values["AUDIO_CACHE_MAX_WORKERS"] == "0"
    assert values["AUDIO_CACHE_PRECACHE_ON_UPLOAD"] == "False"
    assert values["AUDIO_CACHE_PRECACHE_QUALITIES"] == "['low', 'high']"
    assert values["AUDIO_CACHE_MAX_SIZE"] == str(int(1.5 * 1024**3))
    assert values["AUDIO_CACHE_MAX_AGE_DAYS"] == "30"
    assert values["AUDIO_CACHE_TRANSCODE_TIMEOUT"] == "60"
    assert values["AUDIO_CACHE_FFMPEG"] == "/opt/ffmpeg/bin/ffmpeg"
    assert values["AUDIO_CACHE_FFPROBE"] == "/opt/ffmpeg/bin/ffprobe"
    assert values["AUDIO_CACHE_SENDFILE"] == "nginx"
    assert values["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert values["ALLOWED_HOSTS"] == "['music.example.org', 'localhost']"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUDIO_CACHE_DEFAULT_QUALITY", "ultra"),
        ("AUDIO_CACHE_MAX_WORKERS", "-1"),
        ("AUDIO_CACHE_MAX_WORKERS", "four"),
        ("AUDIO_CACHE_PRECACHE_QUALITIES", "medium,ultra"),
        ("AUDIO_CACHE_PRECACHE_QUALITIES", "medium,flac:high"),
        ("AUDIO_CACHE_FORMATS", "mp3,vorbis"),
        ("AUDIO_CACHE_MAX_SIZE", "lots"),
        ("AUDIO_CACHE_ENABLED", "maybe"),
        ("AUDIO_CACHE_TRANSCODE_TIMEOUT", "0"),
        ("AUDIO_CACHE_SENDFILE", "apache"),
        ("DATABASE_URL", "oracle-ish://nowhere"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("SECRET_KEY", "short"),
        ("HTTPS", "sometimes"),
        ("AUDIO_CACHE_DIR", "."),  # holds DATA_ROOT (./data) and the music
        ("LOG_FORMAT", "xml"),
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_LOCKOUT_MINUTES", "soon"),
        ("MIXTAPES_PUBLIC_SHARING", "friends"),
        ("SUBSONIC_ENABLED", "perhaps"),
        ("ARTWORK_DIR", "data/music/pictures"),  # inside MUSIC_ROOT (./data/music), which is never written
    ],
)
def test_invalid_value_stops_start_up_naming_the_variable(checkout, variable, value):
    result = manage(checkout, "check", **{variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"Configuration error: {variable}")
    assert "Traceback" not in result.stderr


def test_asgi_entry_point_also_refuses_bad_settings(checkout):
    result = python(checkout, "-c", "import config.asgi", AUDIO_CACHE_MAX_WORKERS="-1")
    assert result.returncode == 2
    assert "AUDIO_CACHE_MAX_WORKERS='-1' is invalid" in result.stderr


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(checkout):
    script = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]); "
        "c.execute('PRAGMA busy_timeout'); print(c.fetchone()[0])"
    )
    result = manage(checkout, "shell", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["wal", "30000"]
    assert (checkout / "data" / "db.sqlite3").exists()


def test_a_new_data_root_is_created(checkout):
    result = manage(checkout, "migrate", "-v", "0", SECRET_KEY="k" * 40, DATA_ROOT=str(checkout / "new" / "data"))
    assert result.returncode == 0, result.stderr
    assert (checkout / "new" / "data" / "db.sqlite3").is_file()
    blocked = manage(checkout, "check", SECRET_KEY="k" * 40, DATA_ROOT="/proc/version/data")
    assert blocked.returncode == 2
    assert blocked.stderr.startswith("Configuration error: DATA_ROOT='/proc/version/data' cannot be created")


def test_generated_secret_key_is_private_and_stable(checkout):
    show_key = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = manage(checkout, "shell", "-c", show_key)
    second = manage(checkout, "shell", "-c", show_key)
    assert first.returncode == 0, first.stderr
    key_file = checkout / "data" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.stdout.split()[-1] == second.stdout.split()[-1] == key_file.read_text().strip()
    assert len(key_file.read_text().strip()) >= 50


def test_database_url_selects_postgresql(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://mixtapes:pw@db.internal:5433/mixtapes")
    config = env.database("DATABASE_URL", "sqlite:///x")
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
        "django.db.backends.postgresql", "db.internal", 5433, "mixtapes"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("1024", 1024), ("500M", 500 * 1024**2), ("20G", 20 * 1024**3), ("1.5T", int(1.5 * 1024**4)),
     ("20GB", 20 * 1024**3), ("20 GiB", 20 * 1024**3), ("4k", 4096)],
)  # fmt: skip
def test_byte_sizes(monkeypatch, text, expected):
    monkeypatch.setenv("SOME_SIZE", text)
    assert env.byte_size("SOME_SIZE", 7) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("1.5H", 5400), ("1d", 86400), (" 2 h ", 7200)],
)
def test_intervals(monkeypatch, text, expected):
    monkeypatch.setenv("LIBRARY_RESCAN_INTERVAL", text)
    assert env.interval("LIBRARY_RESCAN_INTERVAL", 0) == expected


@pytest.mark.parametrize("text", ["soon", "1w", "-1h", "1h30m", "nan", "31d"])
def test_bad_intervals_say_what_is_accepted(monkeypatch, text):
    monkeypatch.setenv("LIBRARY_RESCAN_INTERVAL", text)
    with pytest.raises(ImproperlyConfigured) as excinfo:
        env.interval("LIBRARY_RESCAN_INTERVAL", 0)
    assert str(excinfo.value).startswith(f"LIBRARY_RESCAN_INTERVAL={text!r} is invalid: expected a period")


def test_unset_and_empty_values_take_the_default(monkeypatch):
    monkeypatch.delenv("SOME_INT", raising=False)
    assert env.integer("SOME_INT", 4, minimum=0) == 4
    monkeypatch.setenv("SOME_INT", "  ")
    assert env.integer("SOME_INT", 4, minimum=0) == 4


def test_error_message_says_what_is_accepted(monkeypatch):
    monkeypatch.setenv("AUDIO_CACHE_DEFAULT_QUALITY", "ultra")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        env.choice("AUDIO_CACHE_DEFAULT_QUALITY", "medium", ("high", "medium", "low"))
    assert str(excinfo.value) == ("AUDIO_CACHE_DEFAULT_QUALITY='ultra' is invalid: expected one of high, medium, low.")


def test_https_settings_behind_a_tls_proxy(checkout):
    show = (
        "import json; from django.conf import settings as s; print(json.dumps({k: str(getattr(s, k, None)) for k in "
        "['SESSION_COOKIE_SECURE','CSRF_COOKIE_SECURE','SECURE_SSL_REDIRECT','SECURE_HSTS_SECONDS',"
        "'SECURE_PROXY_SSL_HEADER','CSRF_TRUSTED_ORIGINS']}))"
    )
    plain = json.loads(manage(checkout, "shell", "-c", show).stdout.strip().splitlines()[-1])
    assert plain["SESSION_COOKIE_SECURE"] == "False" and plain["SECURE_HSTS_SECONDS"] == "0"
    result = manage(
        checkout, "shell", "-c", show, HTTPS="true", SECURE_HSTS_SECONDS="3600",
        CSRF_TRUSTED_ORIGINS="https://music.example.org",
    )  # fmt: skip
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_COOKIE_SECURE": "True",
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_HSTS_SECONDS": "3600",
        "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_PROTO', 'https')",
        "CSRF_TRUSTED_ORIGINS": "['https://music.example.org']",
    }


def test_check_deploy_passes_with_production_settings(checkout):
    production = {
        "HTTPS": "true",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "ALLOWED_HOSTS": "music.example.org",
        "SECRET_KEY": "k" * 10 + "-very-long-random-secret-value-for-the-test-0123456789",
    }
    result = manage(checkout, "check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 0, result.stdout + result.stderr
    # Without HTTPS the same command says what is missing (a LAN install may choose that).
    result = manage(checkout, "check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=production["SECRET_KEY"])
    assert result.returncode != 0 and "SECURE_HSTS_SECONDS" in result.stderr


def test_json_logs(checkout):
    code = (
        "import logging; logging.getLogger('audiocache.worker').info('transcode done', "
        "extra={'track': 7, 'quality': 'medium', 'seconds': 1.5, 'bytes': 1234, 'result': 'done'})"
    )
    result = manage(checkout, "shell", "-c", code, LOG_FORMAT="json")
    line = json.loads([x for x in result.stderr.splitlines() if x.startswith("{")][-1])
    assert line["message"] == "transcode done" and line["logger"] == "audiocache.worker"
    assert (line["track"], line["quality"], line["seconds"], line["bytes"], line["result"]) == (
        7, "medium", 1.5, 1234, "done"
    )  # fmt: skip
    assert line["level"] == "info" and line["time"].endswith("+00:00")
