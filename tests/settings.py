"""Test settings: the real settings, with every writable root in a throwaway folder.

The environment is set before ``config.settings`` is imported so the test run never
writes into the checkout's ``data/`` folder or reads a developer's ``.env`` values for roots.
"""

import atexit
import os
import shutil
import tempfile

_root = tempfile.mkdtemp(prefix="mixtapes-test-")
atexit.register(shutil.rmtree, _root, ignore_errors=True)
os.environ["DATA_ROOT"] = _root
os.environ.setdefault("SECRET_KEY", "test-only-key-" + "x" * 40)

from config.settings import *  # noqa: E402,F403
from config.settings import STORAGES  # noqa: E402

# Templates call {% static %}; the manifest is only built by collectstatic (tested on its own).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
STATIC_ROOT = os.path.join(_root, "static")
os.makedirs(STATIC_ROOT, exist_ok=True)

# A database file (not SQLite's default in-memory test database) so worker threads and
# worker processes started by the tests can open it; PostgreSQL needs nothing special.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_root, "test.sqlite3")}  # noqa: F405

# Short leases and no retry delay keep the queue tests quick; the production defaults are
# covered by test_settings.
AUDIO_CACHE_LEASE_SECONDS = 3
AUDIO_CACHE_RETRY_DELAY = 0

# The test client has no worker pool behind it: a miss looks once for a running transcode to
# follow and otherwise serves the original at once. Progressive tests set their own wait.
AUDIO_CACHE_PROGRESSIVE_WAIT = 0
