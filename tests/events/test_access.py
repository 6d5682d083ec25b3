"""Who may read a batch's progress (audiocache/events/access.py): the owner and staff only."""

import uuid

import pytest

from audiocache.events.access import BatchChannelManager
from audiocache.events.payload import channel_for
from tests.factories import CacheBatchFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_channel_manager_lets_owners_and_staff_read():
    owner, other, staff = UserFactory(), UserFactory(), UserFactory(is_staff=True)
    batch = CacheBatchFactory(created_by=owner)
    manager, channel = BatchChannelManager(), channel_for(batch.pk)
    assert manager.can_read_channel(owner, channel)
    assert manager.can_read_channel(staff, channel)
    assert not manager.can_read_channel(other, channel)
    assert not manager.can_read_channel(None, channel)
    assert not manager.can_read_channel(owner, "batch-not-a-uuid")
    assert not manager.can_read_channel(staff, "something-else")
    assert not manager.can_read_channel(staff, channel_for(uuid.uuid4()))
    assert manager.is_channel_reliable(channel)


def test_event_view_permissions(client):
    owner, other = UserFactory(), UserFactory()
    batch = CacheBatchFactory(created_by=owner)
    address = f"/events/batches/{batch.pk}/"
    assert client.get(address).status_code == 403
    client.force_login(other)
    assert client.get(address).status_code == 403
    assert client.get(f"/events/batches/{uuid.uuid4()}/").status_code == 404
    assert client.get("/events/batches/not-a-uuid/").status_code == 404
