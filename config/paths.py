"""Whether a path stays inside a folder: the one containment check of the project.

Every path that comes from a request, a database row or a walk of the library is resolved
(symlinks followed) and checked here before it is opened, served or deleted: a track's file
must stay inside MUSIC_ROOT, a rendition inside AUDIO_CACHE_DIR, a cover inside MEDIA_ROOT.
Plain Python (no Django), so that the settings can use it too.
"""

import os


def is_inside(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies below it. Both must already be resolved
    (``os.path.realpath``): this compares names, it does not follow links."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def resolve_inside(folder: str | os.PathLike, relative: str | os.PathLike) -> str | None:
    """``relative`` joined to ``folder`` and resolved, or None when the result leaves ``folder``
    (``..``, an absolute name, a symlink pointing elsewhere) or is ``folder`` itself."""
    root = os.path.realpath(folder)
    resolved = os.path.realpath(os.path.join(root, relative))
    if resolved == root or not is_inside(resolved, root):
        return None
    return resolved
