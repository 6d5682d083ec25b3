"""The decisions and writes of the audio cache: the door that views, the admin, commands and
other apps go through (reads are in ``audiocache.selectors``).

- ``choose_format``: which format a listener gets (``formats.py``), ``set_streaming_format``
  their choice on the account page;
- ``play``: which file answers a stream request (``play.py``), following a transcode while it
  is written (``following.py``), counting plays (``play_counts.py``);
- ``precache_mixtape``/``precache_tracks``: queue a batch of renditions (``precache.py``);
- ``plan_download``: which file of each track goes into a mixtape's zip (``downloads.py``);
- ``run_task``/``make_rendition``: transcode a queued task or a track now (``transcoding.py``);
- ``retranscode``, ``retry_tasks``, ``cancel_tasks``: change the queue from the admin (``queue_changes.py``);
- ``purge``, ``expire``, ``evict_to_size``, ``enforce_limits``, ``reconcile``: keep the cache in
  bounds (``cleanup.py``).
"""

from .cleanup import enforce_limits, evict_to_size, expire, purge, reconcile
from .downloads import DownloadFile, DownloadPlan, plan_download
from .formats import AUTOMATIC, UnknownFormat, choose_format, preferred_format, set_streaming_format
from .play import NotPlayable, Play, PlayRequest, WaitForTranscode, play, wait_for_transcode
from .precache import PrecacheResult, precache_mixtape, precache_tracks
from .queue_changes import cancel_tasks, retranscode, retry_tasks
from .transcoding import make_rendition, run_task

__all__ = [
    "AUTOMATIC",
    "DownloadFile",
    "DownloadPlan",
    "NotPlayable",
    "Play",
    "PlayRequest",
    "PrecacheResult",
    "UnknownFormat",
    "WaitForTranscode",
    "cancel_tasks",
    "choose_format",
    "enforce_limits",
    "evict_to_size",
    "expire",
    "make_rendition",
    "plan_download",
    "play",
    "precache_mixtape",
    "precache_tracks",
    "preferred_format",
    "purge",
    "reconcile",
    "retranscode",
    "retry_tasks",
    "run_task",
    "set_streaming_format",
    "wait_for_transcode",
]
