"""Turn a configuration error into one clear line and exit status 2, not a traceback."""

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
