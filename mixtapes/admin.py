from django.contrib import admin

from audiocache.admin import (
    QueuePermissionMixin,
    RenditionInline,
    TrackSearchMixin,
    precache_action,
    renditions_table,
)

from . import services
from .models import Mixtape, MixtapeTrack, Track


@admin.register(Track)
class TrackAdmin(QueuePermissionMixin, TrackSearchMixin, admin.ModelAdmin):
    track_lookup = "id"
    list_display = ["display_title", "artist", "album", "codec", "is_lossless", "duration", "missing_since"]
    list_filter = ["is_lossless", "codec", "has_cover", ("missing_since", admin.EmptyFieldListFilter)]
    search_fields = ["title"]  # see TrackSearchMixin: the trigram index, every word in any tag or the file name
    search_help_text = "Every word must appear in the title, artist, album or file name."
    readonly_fields = [f.name for f in Track._meta.fields if f.name != "search_text"]
    exclude = ["search_text"]
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over a 100k-row library on every page is wasted work
    inlines = [RenditionInline]
    actions = ["precache_selected"]

    def has_add_permission(self, request):
        return False  # tracks come from scanlibrary, not from hand entry

    @admin.action(description="Precache selected tracks…", permissions=["queue"])
    def precache_selected(self, request, queryset):
        return precache_action(self, request, queryset, tracks_of=lambda qs: qs, what="tracks")


class MixtapeTrackInline(admin.TabularInline):
    model = MixtapeTrack
    raw_id_fields = ["track"]
    extra = 0


@admin.register(Mixtape)
class MixtapeAdmin(QueuePermissionMixin, admin.ModelAdmin):
    list_display = ["title", "owner", "is_public", "updated_at"]
    list_select_related = ["owner"]
    list_filter = ["is_public"]
    search_fields = ["title", "slug", "owner__username"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [MixtapeTrackInline]
    readonly_fields = ["renditions"]
    actions = ["precache_selected"]

    def delete_model(self, request, obj):
        services.delete_mixtape(obj)  # the cover file goes too

    def delete_queryset(self, request, queryset):
        for mixtape in queryset:
            services.delete_mixtape(mixtape)

    @admin.display(description="cached renditions of its tracks")
    def renditions(self, mixtape):
        if mixtape.pk is None:
            return "—"
        return renditions_table(mixtape.entries.values("track_id"))

    @admin.action(description="Precache selected mixtapes…", permissions=["queue"])
    def precache_selected(self, request, queryset):
        return precache_action(
            self,
            request,
            queryset,
            tracks_of=lambda qs: Track.objects.filter(mixtape_entries__mixtape__in=qs).distinct(),
            what="mixtapes",
        )
