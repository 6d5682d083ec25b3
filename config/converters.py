"""Path converters: ``<id:track_id>`` for database ids, ``<token:token>`` for share links.

Django's ``int`` converter takes any run of digits, so a 4,301-digit id reaches ``int()`` (and
Python's conversion limit) and a 19-digit one reaches the database (past a 64-bit column: an
error, not a 404). Ids here are 1 to 18 ASCII digits, which always fit; anything else does
not match the URL, which is a 404.
"""

from django.urls import register_converter

from mixtapes.sharing import TOKEN_PATTERN


class IdConverter:
    regex = "[0-9]{1,18}"  # "[0-9]", not "\d": \d would also match other scripts' digits

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


register_converter(IdConverter, "id")


class TokenConverter:
    """A share link's token: exactly 22 URL-safe base64 characters (mixtapes/sharing.py)."""

    regex = TOKEN_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


register_converter(TokenConverter, "token")
