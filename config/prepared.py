"""A query the ORM writes once and the app runs many times with other values.

Django builds a queryset's SQL anew each time it is evaluated: 1-2 ms of CPU for a query with a
join, more than the rest of a cached song's answer. A music app authenticates every call and
streams song after song, so the Subsonic API's two reads on that path (the login and the song)
keep the SQL the ORM wrote, with the ORM's own converters for the rows, and only execute it.
Everything else uses querysets as usual.
"""

import threading
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet


class PreparedQuery:
    """``build(value)`` returns a ``values_list`` queryset for one value of its single varying
    parameter; ``marker`` is a value of the right type that appears nowhere else in it."""

    def __init__(self, build: Callable[[object], QuerySet], marker):
        self._build = build
        self._marker = marker
        self._prepared: dict[tuple[str, str], tuple] = {}
        self._lock = threading.Lock()

    def rows(self, value, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        connection = connections[using]
        key = (using, connection.vendor)
        prepared = self._prepared.get(key)
        if prepared is None:
            with self._lock:
                prepared = self._prepared.setdefault(key, self._prepare(using))
        compiler, sql, params, slot = prepared
        params = [*params[:slot], value, *params[slot + 1 :]]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        # The compiler only converts here (its converters read the backend's settings, never
        # its connection's state), so one compiler serves every thread.
        return list(compiler.results_iter(results=[fetched], tuple_expected=True))

    def _prepare(self, using: str) -> tuple:
        queryset = self._build(self._marker)
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        slots = [n for n, param in enumerate(params) if param == self._marker]
        if len(slots) != 1:
            raise ValueError(f"The marker must appear once in the query's parameters, not {len(slots)} times")
        return compiler, sql, tuple(params), slots[0]
