"""Typed, validated reads of environment variables for ``config.settings``.

django-environ does the parsing (booleans, lists, database URLs, ``.env`` files).
What it does not do is reject out-of-range values with a message a user can act on,
so every reader here raises ``ImproperlyConfigured`` naming the variable, its value
and what would be accepted. ``manage.py`` and ``config/asgi.py`` turn that into a
one-line message and a non-zero exit instead of a traceback.
"""

import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

SUPPORTED_DATABASE_ENGINES = ("django.db.backends.sqlite3", "django.db.backends.postgresql")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_INTERVAL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _invalid(name: str, raw: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={raw!r} is invalid: expected {expected}.")


def raw(name: str) -> str | None:
    """The variable's text, or None when it is not set (an empty value counts as unset)."""
    value = env.str(name, default="")
    return value if value.strip() else None


def string(name: str, default: str) -> str:
    value = raw(name)
    return default if value is None else value.strip()


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise _invalid(name, value, "true or false")


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = raw(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise _invalid(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _invalid(name, value, f"a whole number >= {minimum}")
    if maximum is not None and number > maximum:
        raise _invalid(name, value, f"a whole number <= {maximum}")
    return number


def seconds(name: str, default: float, *, maximum: float) -> float:
    """A duration in seconds, fractions allowed (``0.5``), from 0 to ``maximum``."""
    value = raw(name)
    if value is None:
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise _invalid(name, value, "a number of seconds") from None
    if not 0 <= number <= maximum:  # also refuses nan and inf
        raise _invalid(name, value, f"a number of seconds from 0 to {maximum:g}")
    return number


def interval(name: str, default: float, *, maximum: float = 30 * 86400) -> float:
    """A period such as ``90s``, ``15m``, ``1h``, ``1d`` or a plain number of seconds, in seconds."""
    value = raw(name)
    if value is None:
        return default
    match = _INTERVAL_RE.match(value)
    if not match:
        raise _invalid(name, value, "a period such as 0, 90s, 15m, 1h or 1d")
    number = float(match.group(1)) * _INTERVAL_UNITS[match.group(2).lower()]
    if number > maximum:
        raise _invalid(name, value, f"a period of at most {maximum / 86400:g} days")
    return number


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw(name)
    if value is None:
        return default
    normalized = value.strip().lower()
    if normalized not in choices:
        raise _invalid(name, value, "one of " + ", ".join(choices))
    return normalized


def choices_list(name: str, default: list[str], choices: tuple[str, ...]) -> list[str]:
    """A comma-separated list whose items all come from ``choices``; order kept, duplicates dropped."""
    value = raw(name)
    if value is None:
        return list(default)
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    if not items or any(item not in choices for item in items):
        raise _invalid(name, value, "a comma-separated list of " + ", ".join(choices))
    return list(dict.fromkeys(items))


def string_list(name: str, default: list[str]) -> list[str]:
    value = raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def byte_size(name: str, default: int) -> int:
    """A size such as ``20G``, ``500M``, ``1.5T`` or a plain number of bytes (binary units)."""
    value = raw(name)
    if value is None:
        return default
    try:
        return parse_byte_size(value)
    except ValueError:
        raise _invalid(name, value, "a size such as 0, 500M, 20G or 1.5T") from None


def parse_byte_size(text: str) -> int:
    """``"20G"`` -> 21474836480; ValueError for anything that is not a size."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.upper()])


def path(name: str, default: Path) -> Path:
    value = raw(name)
    chosen = Path(value.strip()).expanduser() if value is not None else default
    # Absolute, but not resolved: a symlinked library root is the user's choice.
    return chosen if chosen.is_absolute() else (Path.cwd() / chosen)


def database(name: str, default: str) -> dict:
    value = raw(name) or default
    try:
        config = environ.Env.db_url_config(value)
    except Exception as exc:  # django-environ raises several types for bad URLs
        raise _invalid(
            name, value, f"a database URL such as sqlite:////path/db.sqlite3 or postgres://user@host/db ({exc})"
        ) from None
    if config.get("ENGINE") not in SUPPORTED_DATABASE_ENGINES:
        raise _invalid(name, value, "a sqlite:// or postgres:// URL (the databases this app is tested on)")
    return config


def url(name: str, default: str = "", *, schemes: tuple[str, ...]) -> str:
    value = raw(name)
    if value is None:
        return default
    value = value.strip()
    if not any(value.startswith(f"{scheme}://") for scheme in schemes):
        raise _invalid(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    return value


def read_env_file(path_: Path) -> None:
    """Load ``.env`` for development; real environment variables always win."""
    if path_.is_file():
        environ.Env.read_env(str(path_), overwrite=False)
