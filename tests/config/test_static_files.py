"""collectstatic with the production storage (config/storage.py): hashed names in a manifest.

Serving them from a live server is tests/e2e/test_static_files.py.
"""

import os
import subprocess
import sys

from tests.conftest import REPO


def test_collectstatic_with_the_production_manifest_storage(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        DATA_ROOT=str(tmp_path / "data"),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    assert "vendor/bootstrap/bootstrap.min.css" in manifest
