# Single-node image: uvicorn serving the app. DATA_ROOT (database, cache, uploads) and
# MUSIC_ROOT (read-only library) are volumes.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_ROOT=/data \
    MUSIC_ROOT=/music

# ffmpeg comes from the distribution (with libmp3lame). Versions are not pinned on purpose:
# a pinned Debian version disappears from the mirrors with the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app \
    && mkdir -p /data /music \
    && chown app:app /data

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=root:root . .
# A throwaway key for this step only, so no key is baked into the image.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATA_ROOT=/tmp/build-data python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-data

USER 10001:10001
VOLUME ["/data", "/music"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
