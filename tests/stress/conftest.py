# The stress tests start real manage.py/uvicorn processes, as the end-to-end tests do.
from tests.e2e.conftest import manage_env  # noqa: F401
