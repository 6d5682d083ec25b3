"""The cache's admin pages: renditions (with the dashboard and purges), tasks, batches, and
the cache's parts of the library's track and mixtape pages (renditions, precache actions).

Deleting a rendition anywhere in the admin deletes its file too (``services.purge``);
nothing here can touch MUSIC_ROOT. Writes go through ``audiocache.services``, figures come
from ``audiocache.selectors``.
"""

from . import batches, library, renditions, tasks

__all__ = ["batches", "library", "renditions", "tasks"]
