"""Turn a configuration error (exit status 2) or an unreachable database (exit status 1)
into one clear line, not a traceback."""

import contextlib
import sys

from django.core.exceptions import ImproperlyConfigured


def exit_on_bad_settings() -> None:
    """Load the settings and the apps now: the settings check their own values, and each app
    checks the settings it owns when it starts (audiocache: the quality names)."""
    import django

    try:
        django.setup(set_prefix=False)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        raise SystemExit(2) from None


@contextlib.contextmanager
def exit_on_unreachable_database():
    """Around a management command: a database that cannot be reached is said in one line."""
    from . import database

    try:
        yield
    except database.UNREACHABLE_ERRORS as exc:
        if not database.is_connection_failure(exc):
            raise
        sys.stderr.write(f"Error: {database.message(database.reason(exc))}\n")
        raise SystemExit(1) from None
