"""Who may read which progress channel (django-eventstream's channel manager)."""

from django_eventstream.channelmanager import DefaultChannelManager

from .models import CacheBatch
from .progress import batch_id_from_channel


def may_follow(user, batch: CacheBatch) -> bool:
    """A batch's progress is for the user who started it, and for staff; never for anonymous users."""
    return user is not None and user.is_authenticated and (user.is_staff or batch.created_by_id == user.pk)


def can_read_batch(user, batch_id) -> bool:
    batch = CacheBatch.objects.filter(pk=batch_id).first() if user is not None and user.is_authenticated else None
    return batch is not None and may_follow(user, batch)


class BatchChannelManager(DefaultChannelManager):
    def can_read_channel(self, user, channel):
        batch_id = batch_id_from_channel(channel)
        if batch_id is None:
            return False
        try:
            return can_read_batch(user, batch_id)
        except Exception:  # not a UUID
            return False

    def is_channel_reliable(self, channel):
        return True  # stored, so reconnecting and late clients get every event
