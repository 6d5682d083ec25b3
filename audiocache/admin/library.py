"""The cache's parts of the library's admin pages: a track's renditions, a mixtape's
renditions, and "Precache selected …" actions on both.

The library's own admin (``mixtapes/admin.py``) knows nothing of the cache; this module
registers subclasses of its track and mixtape admins in their place, the way a project
extends ``django.contrib.auth``'s ``UserAdmin``.
"""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from mixtapes.admin import MixtapeAdmin, TrackAdmin
from mixtapes.models import Mixtape, Track

from ..models import CachedRendition
from ..services.precache import mixtape_track_ids
from .actions import QueuePermissionMixin, precache_action, size_label


class RenditionInline(admin.TabularInline):
    model = CachedRendition
    fields = ["format", "quality", "bitrate", "file_name", "size_label", "created_at", "last_accessed_at", "hit_count"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="size")
    def size_label(self, rendition):
        return size_label(rendition.size)


def renditions_table(track_ids) -> str:
    """An HTML table of the renditions of these tracks (one query), for the mixtape admin."""
    rows = (
        CachedRendition.objects.filter(track_id__in=track_ids)
        .select_related("track")
        .order_by("track_id", "format", "quality")
    )
    if not rows:
        return format_html("<p>{}</p>", "No renditions yet.")
    body = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((r.track, r.variant.label, size_label(r.size), r.hit_count) for r in rows),
    )  # fmt: skip
    return format_html(
        "<table><thead><tr><th>Track</th><th>Quality</th><th>Size</th><th>Hits</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


admin.site.unregister(Track)
admin.site.unregister(Mixtape)


@admin.register(Track)
class CachedTrackAdmin(QueuePermissionMixin, TrackAdmin):
    inlines = [*TrackAdmin.inlines, RenditionInline]
    actions = [*TrackAdmin.actions, "precache_selected"]

    @admin.action(description="Precache selected tracks…", permissions=["queue"])
    def precache_selected(self, request, queryset):
        return precache_action(
            self, request, queryset, track_ids_of=lambda qs: list(qs.values_list("id", flat=True)), what="tracks"
        )


@admin.register(Mixtape)
class CachedMixtapeAdmin(QueuePermissionMixin, MixtapeAdmin):
    readonly_fields = [*MixtapeAdmin.readonly_fields, "renditions"]
    actions = [*MixtapeAdmin.actions, "precache_selected"]

    @admin.display(description="cached renditions of its tracks")
    def renditions(self, mixtape):
        if mixtape.pk is None:
            return "—"
        return renditions_table(mixtape.entries.values("track_id"))

    @admin.action(description="Precache selected mixtapes…", permissions=["queue"])
    def precache_selected(self, request, queryset):
        return precache_action(self, request, queryset, track_ids_of=mixtape_track_ids, what="mixtapes")
