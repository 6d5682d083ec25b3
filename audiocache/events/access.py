"""Who may read which batch's progress: django-eventstream's channel manager, and the same
rule for the event view (``EVENTSTREAM_CHANNELMANAGER_CLASS`` names the manager)."""

import uuid

from django_eventstream.channelmanager import DefaultChannelManager

from ..models import CacheBatch
from .payload import batch_id_from_channel


def may_follow(user, batch: CacheBatch) -> bool:
    """A batch's progress is for the user who started it, and for staff; never for anonymous users."""
    return user is not None and user.is_authenticated and (user.is_staff or batch.created_by_id == user.pk)


def can_read_batch(user, batch_id) -> bool:
    if user is None or not user.is_authenticated:
        return False
    try:
        batch_id = uuid.UUID(str(batch_id))
    except ValueError:
        return False
    batch = CacheBatch.objects.filter(pk=batch_id).first()
    return batch is not None and may_follow(user, batch)


class BatchChannelManager(DefaultChannelManager):
    def can_read_channel(self, user, channel):
        batch_id = batch_id_from_channel(channel)
        return batch_id is not None and can_read_batch(user, batch_id)

    def is_channel_reliable(self, channel):
        return True  # stored, so reconnecting and late clients get every event
