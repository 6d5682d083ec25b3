"""The Range header (RFC 9110 section 14): which byte ranges of a representation to send.

Written by hand because Django has no range support. Malformed headers are ignored (the
whole file is sent), unsatisfiable ones answer 416, too many or overlapping ranges are
answered with the whole file, and no number longer than 18 digits is ever parsed.
"""

import itertools
import re
from dataclasses import dataclass

MAX_RANGES = 16  # more parts than this is a scan, not a player: the whole file is cheaper
_DIGITS_LIMIT = 18  # longer numbers are "huge": never parsed (Python refuses > 4300 digits anyway)
_SPEC = re.compile(r"^([0-9]*)-([0-9]*)$", re.ASCII)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """Every range lies outside the representation: answer 416."""


def _number(text: str, huge: int) -> int:
    return huge if len(text) > _DIGITS_LIMIT else int(text)


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of ``header`` for a file of ``size`` bytes.

    Returns None when the header is absent, malformed or not in bytes (serve the whole file),
    raises ``Unsatisfiable`` when it is valid but no range overlaps the file.
    """
    if not header:
        return None
    unit, sep, spec_list = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [s.strip() for s in spec_list.split(",")]
    specs = [s for s in specs if s]  # RFC 9110 list syntax tolerates empty elements
    if not specs:
        return None
    huge = size + 1
    ranges = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            return None
        first, last = match.groups()
        if first:
            start = _number(first, huge)
            end = _number(last, huge) if last else size - 1
            if last and end < start:
                return None  # "5-2" is invalid syntax: ignore the whole header
            if start >= size:
                continue  # unsatisfiable on its own
            ranges.append(ByteRange(start, min(end, size - 1)))
        elif last:
            suffix = _number(last, huge)
            if suffix == 0 or size == 0:
                continue  # "-0" selects nothing
            ranges.append(ByteRange(max(0, size - suffix), size - 1))
        else:
            return None  # "-" alone
    if not ranges:
        raise Unsatisfiable
    return ranges


def needs_whole_file(ranges: list[ByteRange]) -> bool:
    """Overlapping or too many ranges: send the whole representation with 200 instead."""
    if len(ranges) > MAX_RANGES:
        return True
    ordered = sorted(ranges, key=lambda r: r.start)
    return any(b.start <= a.end for a, b in itertools.pairwise(ordered))


def from_the_start(header: str | None) -> bool:
    """No Range, or one from byte 0: what a player asks for when a play starts."""
    return (header or "bytes=0-").replace(" ", "").startswith("bytes=0-")
