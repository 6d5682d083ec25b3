# Production image: uvicorn serving the app (or `python manage.py cacheworker`). DATA_ROOT
# (SQLite database if used, uploads, generated key) and MUSIC_ROOT (read-only library) are
# volumes; deploy/docker-compose.yml runs the scale-out topology with it.

# --- build: the virtualenv and the collected static files ------------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
# Binary wheels where they exist; the few pure-Python sdists (gripcontrol) need no compiler.
# Nothing of this stage but /venv and /app reaches the final image.
RUN /venv/bin/pip install --prefer-binary -r /tmp/requirements.txt

WORKDIR /app
COPY . .
# A throwaway key for this step only, so no key is baked into the image.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATA_ROOT=/tmp/build-data STATIC_ROOT=/app/staticfiles \
    /venv/bin/python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-data
# The app's bytecode, compiled once here: the final image runs with PYTHONDONTWRITEBYTECODE and
# a read-only /app, so without it every process (each precache, cacheworker, server start)
# compiled every module of the app again, about 0.25 s of CPU each time.
RUN /venv/bin/python -m compileall -q /app

# --- final: Python, ffmpeg, the app; runs as an unprivileged user ---------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH \
    DATA_ROOT=/data \
    MUSIC_ROOT=/music \
    STATIC_ROOT=/app/staticfiles

# ffmpeg comes from the distribution (with libmp3lame). Versions are not pinned on purpose:
# a pinned Debian version disappears from the mirrors with the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app \
    && mkdir -p /data /music /cache /static \
    && chown app:app /data /cache /static

COPY --from=build /venv /venv
COPY --from=build --chown=root:root /app /app
WORKDIR /app

USER 10001:10001
VOLUME ["/data", "/music"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/healthz', timeout=4)"]
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
CMD ["uvicorn", "config.asgi:application", "--loop", "asyncio", "--http", "audiocache.delivery.zerocopy:HttpToolsProtocol", \
     "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--forwarded-allow-ips", "*"]
