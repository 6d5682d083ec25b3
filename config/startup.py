"""Turn a configuration error into one clear line and exit status 2, not a traceback."""

import sys

from django.core.exceptions import ImproperlyConfigured


def exit_on_bad_settings() -> None:
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces settings to load now
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        raise SystemExit(2) from None
