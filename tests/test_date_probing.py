"""The renditions' date hierarchy by index probes (audiocache/date_probing.py): the same answers as the
database's own DISTINCT trunc() and MIN/MAX.
"""

from datetime import UTC

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiocache.models import CachedRendition
from tests.factories import CachedRenditionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("tz", ["UTC", "Pacific/Auckland", "America/Sao_Paulo"])
def test_date_probes_give_what_the_database_gives(settings, tz):
    from datetime import datetime, timedelta

    from django.db.models import QuerySet
    from django.utils import timezone

    settings.TIME_ZONE = tz
    moments = [datetime(2025, 12, 31, 23, 30, tzinfo=UTC) + timedelta(days=d, hours=h) for d, h in
               [(0, 0), (0, 2), (1, 0), (31, 5), (40, 12), (400, 0), (401, 23)]]  # fmt: skip
    for moment in moments:
        r = CachedRenditionFactory(quality="low" if moment.day % 2 else "high")
        CachedRendition.objects.filter(pk=r.pk).update(created_at=moment)
    with timezone.override(tz):
        for queryset in [CachedRendition.objects.all(), CachedRendition.objects.filter(quality="low")]:
            for kind in ["year", "month", "day"]:
                with CaptureQueriesContext(connection) as probes:
                    probed = list(queryset.datetimes("created_at", kind))
                plain = list(QuerySet.datetimes(queryset, "created_at", kind))
                assert probed == plain and plain, (kind, probed, plain)
                if kind != "day":  # over 400 days apart: more periods than MAX_PROBES, the database's job
                    # Index probes (LIMIT 1 and EXISTS), not the database's DISTINCT over every row.
                    assert probes and not any("DISTINCT" in q["sql"].upper() for q in probes), kind
            assert list(queryset.datetimes("created_at", "day", order="DESC")) == list(
                QuerySet.datetimes(queryset, "created_at", "day", order="DESC")
            )
    assert CachedRendition.objects.none().datetimes("created_at", "year") == []


def test_first_and_last_by_index_walk_equal_min_and_max():
    from datetime import timedelta

    from django.db.models import Max, Min, QuerySet
    from django.utils import timezone

    assert CachedRendition.objects.aggregate(first=Min("created_at"), last=Max("created_at")) == {
        "first": None,
        "last": None,
    }
    for days, quality in [(5, "low"), (1, "high"), (9, "low"), (3, "medium")]:
        r = CachedRenditionFactory(quality=quality)
        CachedRendition.objects.filter(pk=r.pk).update(created_at=timezone.now() - timedelta(days=days))
    for queryset in [CachedRendition.objects.all(), CachedRendition.objects.filter(quality="low"),
                     CachedRendition.objects.filter(track__title__startswith="Track")]:  # fmt: skip
        with CaptureQueriesContext(connection) as walks:
            fast = queryset.aggregate(first=Min("created_at"), last=Max("created_at"))
        plain = QuerySet.aggregate(queryset, first=Min("created_at"), last=Max("created_at"))
        assert fast == plain and None not in plain.values()
        # Two walks of the index (ORDER BY ... LIMIT 1), no MIN or MAX over the matching rows.
        sql = [q["sql"].upper() for q in walks]
        assert len(sql) == 2 and all("LIMIT 1" in q and "MIN(" not in q and "MAX(" not in q for q in sql), sql
    # Any other aggregate goes to the database as usual.
    with CaptureQueriesContext(connection) as other:
        smallest = CachedRendition.objects.aggregate(n=Min("size"))
    assert smallest == QuerySet.aggregate(CachedRendition.objects.all(), n=Min("size"))
    assert len(other) == 1 and "MIN(" in other[0]["sql"].upper()
