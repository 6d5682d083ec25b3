#!/bin/sh
# Container start: bring the database schema up to date (single container; in compose a
# one-shot `migrate` service does it once and the others set MIGRATE_ON_START=false, because
# Django's migrate takes no lock), publish the static files for nginx when asked, then run
# the container's command.
set -e
if [ "${MIGRATE_ON_START:-true}" = "true" ]; then
    python manage.py migrate --noinput
fi
# STATIC_EXPORT_DIR: a volume nginx serves /static/ from (scale-out). Files keep their hashed
# names, so copying over the previous version is safe while old pages are still open.
if [ -n "${STATIC_EXPORT_DIR:-}" ]; then
    cp -R "${STATIC_ROOT}/." "${STATIC_EXPORT_DIR}/"
fi
exec "$@"
