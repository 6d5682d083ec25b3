"""Changing the queue by hand (the admin's actions): re-transcode renditions, retry failed
tasks, cancel active ones. Each returns how many tasks it queued or cancelled."""

from ..models import CacheTask
from ..qualities import Variant
from ..queue import tasks


def retranscode(renditions) -> int:
    """Queue fresh transcodes of these renditions (a queryset); each keeps being served until
    its new file replaces it."""
    by_variant: dict[Variant, list[int]] = {}
    for track_id, fmt, quality in renditions.values_list("track_id", "format", "quality"):
        by_variant.setdefault(Variant(fmt, quality), []).append(track_id)
    queued = 0
    for variant, track_ids in by_variant.items():
        results = tasks.enqueue(track_ids, [variant], force=True)
        queued += sum(1 for r in results.values() if isinstance(r, CacheTask))
    return queued


def retry_tasks(task_rows) -> int:
    """Queue failed or cancelled tasks again (a queryset), at their own priority. ``force``: a
    failed source is quarantined until its file changes; whoever retries by hand overrides that."""
    retried = 0
    for task in task_rows.filter(status__in=[CacheTask.Status.FAILED, CacheTask.Status.CANCELLED]):
        result = tasks.enqueue([task.track_id], [task.variant], priority=task.priority, force=True)
        retried += sum(1 for r in result.values() if isinstance(r, CacheTask))
    return retried


def cancel_tasks(task_ids) -> int:
    """Cancel active tasks; a running one is stopped by its worker at its next heartbeat."""
    return tasks.cancel(task_ids)
