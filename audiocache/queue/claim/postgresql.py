"""The claim on PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers each
lock a different row and never wait for one another."""

from django.db import transaction

from ...models import CacheTask


def take(claimable, running: dict) -> int | None:
    with transaction.atomic():
        task_id = claimable.select_for_update(skip_locked=True).values_list("id", flat=True).first()
        if task_id is None:
            return None
        CacheTask.objects.filter(pk=task_id).update(**running)
    return task_id
