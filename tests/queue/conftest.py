"""Helpers shared by the queue's tests."""

from mixtapes.library import scan_library
from mixtapes.models import Track


def scanned_tracks(make_audio, *names, **spec):
    """The Track rows of real files made with ``make_audio(name, **spec)`` for each name, scanned."""
    for name in names:
        make_audio(name, **spec)
    scan_library()
    return [Track.objects.get(path=name) for name in names]
