#!/bin/sh
# Container start: bring the database schema up to date (one process at a time: Django's
# migrate holds a lock on PostgreSQL), publish the static files for nginx when asked, then
# run the container's command.
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
