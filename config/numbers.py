"""Whole numbers from untrusted text (query strings, form fields, command arguments)."""

MAX_ID = 10**18 - 1  # within a 64-bit database integer, with room to spare


def whole_number(text: str, maximum: int) -> int | None:
    """``text`` as an int when it is ASCII digits only and at most ``maximum``, else None.

    int() alone would take "-1", " 7", "²" or ten thousand digits; a number past 64 bits makes
    the database driver raise instead of finding nothing.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None
