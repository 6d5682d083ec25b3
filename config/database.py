"""Which database the app uses, said in words, and whether it can be reached.

A database that cannot be reached is an operator's problem, not a bug: every entry point
(``manage.py`` commands, the web process, ``cacheworker``) says once, in one line, which
database it cannot reach and why, instead of a traceback (or thousands of them).
"""

from django.db import DatabaseError, InterfaceError, OperationalError, connection

UNREACHABLE_ERRORS = (OperationalError, InterfaceError)


def describe() -> str:
    """``PostgreSQL at db.example:5432, database "mixtapes"`` or ``SQLite file /srv/data/db.sqlite3``
    (never the password)."""
    details = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite file {details['NAME']}"
    where = details.get("HOST") or "the local socket"
    if details.get("PORT"):
        where += f":{details['PORT']}"
    vendor = {"postgresql": "PostgreSQL", "mysql": "MySQL", "oracle": "Oracle"}.get(
        connection.vendor, connection.vendor
    )
    return f'{vendor} at {where}, database "{details.get("NAME")}"'


def reason(exc: BaseException) -> str:
    """The first line of the driver's message (psycopg's run to several)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def unreachable() -> str | None:
    """None when a connection can be made now, else why not (one line)."""
    try:
        connection.close()
        connection.ensure_connection()
        return None
    except DatabaseError as exc:
        return reason(exc)


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached (rather than, say, a missing table,
    which SQLite also reports as an OperationalError): only if a fresh connection fails too."""
    return isinstance(exc, UNREACHABLE_ERRORS) and unreachable() is not None


def message(why: str) -> str:
    return f"cannot reach the database ({describe()}; DATABASE_URL): {why}"
