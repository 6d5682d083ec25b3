"""The library in the admin: tracks (read-only: they come from the scan), mixtapes and their
share links (read-only, revocable).

The audio cache adds its own parts to these pages (renditions, precache actions) from
``audiocache/admin/library.py``; nothing here knows about the cache.
"""

from django.contrib import admin
from django.db.models import Q

from . import services, sharing
from .models import Mixtape, MixtapeTrack, ShareLink, Track
from .search import matching_tracks


class TrackSearchMixin:
    """Admin search over the library's trigram index (mixtapes/search.py) instead of
    ``icontains`` on three columns, which reads every row of a 100,000-track library.
    ``track_lookup`` names the track from the admin's model ("id" for tracks themselves)."""

    track_lookup = "track"

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        matches = Q(**{f"{self.track_lookup}__in": matching_tracks(search_term).values("id")})
        return queryset.filter(matches | self.extra_search(search_term.strip())), False

    def extra_search(self, term: str) -> Q:
        return Q(pk__in=[])


@admin.register(Track)
class TrackAdmin(TrackSearchMixin, admin.ModelAdmin):
    track_lookup = "id"
    list_display = ["display_title", "artist", "album", "format", "is_lossless", "duration", "missing_since"]
    list_filter = ["is_lossless", "codec", "has_cover", ("missing_since", admin.EmptyFieldListFilter)]
    search_fields = ["title"]  # see TrackSearchMixin: the trigram index, every word in any tag or the file name
    search_help_text = "Every word must appear in the title, artist, album or file name."
    readonly_fields = [f.name for f in Track._meta.fields if f.name != "search_text"]
    exclude = ["search_text"]
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over a 100k-row library on every page is wasted work
    inlines = []
    actions = []

    def has_add_permission(self, request):
        return False  # tracks come from scanlibrary, not from hand entry

    @admin.display(description="Format", ordering="codec")
    def format(self, track):
        return track.format_name


class MixtapeTrackInline(admin.TabularInline):
    model = MixtapeTrack
    raw_id_fields = ["track"]
    extra = 0


@admin.register(Mixtape)
class MixtapeAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "is_public", "updated_at"]
    list_select_related = ["owner"]
    list_filter = ["is_public"]
    search_fields = ["title", "slug", "owner__username"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [MixtapeTrackInline]
    readonly_fields = []
    actions = []

    def delete_model(self, request, obj):
        services.delete_mixtape(obj)  # the cover file goes too

    def delete_queryset(self, request, queryset):
        for mixtape in queryset:
            services.delete_mixtape(mixtape)


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Links are made by owners in the editor; staff can see them and revoke them."""

    list_display = ["mixtape", "label", "state", "allow_download", "visits", "last_visited_at", "expires_at"]
    list_select_related = ["mixtape__owner"]
    list_filter = ["allow_download", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["mixtape__title", "label", "mixtape__owner__username"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="State")
    def state(self, link):
        return sharing.link_state(link)

    @admin.action(description="Revoke the selected links", permissions=["delete"])
    def revoke(self, request, queryset):
        for link in queryset:
            services.revoke_link(link)
        self.message_user(request, f"Revoked {queryset.count()} link(s).")
