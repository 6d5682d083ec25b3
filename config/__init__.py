"""The project: settings (from the environment), URLs, the ASGI and WSGI entry points, /healthz, and the small helpers both apps share (paths.py, numbers.py)."""
