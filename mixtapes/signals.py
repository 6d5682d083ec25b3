"""What the library tells the rest of the app, so that it needs to import none of it."""

from django.dispatch import Signal

# Sent by a scan (``scanlibrary`` or the watcher) once it has written the tracks whose file's
# size or modification time changed, with ``track_ids``: a list of their ids. The audio cache
# re-queues their renditions (audiocache/apps.py connects it).
tracks_changed = Signal()
