"""The claim on SQLite (and any database without ``SKIP LOCKED``): read the best candidate,
then an ``UPDATE`` that only changes it if it is still pending; whoever changed the row owns
the task, the others try the next candidate."""

from ...models import CacheTask

ATTEMPTS = 10  # candidates tried before giving up for this round (others keep taking them)


def take(claimable, running: dict) -> int | None:
    for _ in range(ATTEMPTS):
        task_id = claimable.values_list("id", flat=True).first()
        if task_id is None:
            return None
        if CacheTask.objects.filter(pk=task_id, status=CacheTask.Status.PENDING).update(**running):
            return task_id
    return None
