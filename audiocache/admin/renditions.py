"""Renditions in the admin: the list (state, last played, search), purges, re-transcodes,
and the cache dashboard."""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Count, ExpressionWrapper, Sum
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from config.numbers import whole_number
from mixtapes.admin import TrackSearchMixin

from .. import selectors, services
from ..models import CachedRendition
from ..renditions import rendition_path
from ..services import cleanup
from .actions import QueuePermissionMixin, size_label


class FreshnessFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("fresh", "Fresh"),
            ("stale", "Stale (source changed or new encoder settings)"),
            ("missing", "File missing"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "fresh":
            return queryset.filter(selectors.fresh_q())
        if self.value() == "stale":
            return queryset.exclude(selectors.fresh_q())
        if self.value() == "missing":
            # No query can see the folder: list it once and compare (about 0.2 s for 100,000
            # files). A page of rows is what an operator needs; cacheclean --orphans fixes them all.
            missing = cleanup.rows_without_file(limit=MISSING_LIMIT)
            if len(missing) == MISSING_LIMIT:
                messages.warning(request, f"More than {MISSING_LIMIT} renditions have no file; showing the first "
                                 f"{MISSING_LIMIT}. `manage.py cacheclean --orphans` drops them all.")  # fmt: skip
            return queryset.filter(pk__in=missing)
        return queryset


MISSING_LIMIT = 10_000


class LastUsedFilter(admin.SimpleListFilter):
    title = "last played"
    parameter_name = "played"

    def lookups(self, request, model_admin):
        return [("7", "In the last 7 days"), ("30+", "Not for 30 days"), ("90+", "Not for 90 days"), ("never", "Never")]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "7":
            return queryset.filter(last_accessed_at__gte=now - timedelta(days=7))
        if value in ("30+", "90+"):
            return queryset.alias(used=cleanup.last_used()).filter(used__lt=now - timedelta(days=int(value[:-1])))
        if value == "never":
            return queryset.filter(last_accessed_at__isnull=True)
        return queryset


@admin.register(CachedRendition)
class CachedRenditionAdmin(QueuePermissionMixin, TrackSearchMixin, admin.ModelAdmin):
    list_display = ["track_link", "format", "quality", "bitrate_label", "size_label", "created_at", "last_accessed_at", "hit_count", "state"]  # fmt: skip
    list_filter = ["format", "quality", FreshnessFilter, LastUsedFilter]
    list_select_related = ["track"]
    search_fields = ["track__title"]  # see TrackSearchMixin
    search_help_text = "Every word must appear in the track's title, artist, album or path."
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    actions = ["purge_selected", "retranscode_selected"]
    readonly_fields = [
        "track_link", "format", "quality", "bitrate", "file_name", "size_label", "source_size", "source_mtime_ns",
        "encoder_profile", "created_at", "last_accessed_at", "hit_count", "state",
    ]  # fmt: skip
    fields = readonly_fields
    change_list_template = "admin/audiocache/cachedrendition/change_list.html"

    def has_add_permission(self, request):
        return False  # renditions are made by the workers

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "purge" deletes files too
        return actions

    @admin.display(description="track", ordering="track__title")
    def track_link(self, rendition):
        url = reverse("admin:mixtapes_track_change", args=[rendition.track_id])
        return format_html('<a href="{}">{}</a>', url, rendition.track)

    @admin.display(description="bitrate", ordering="bitrate")
    def bitrate_label(self, rendition):
        return f"{rendition.bitrate}k"

    @admin.display(description="size", ordering="size")
    def size_label(self, rendition):
        return size_label(rendition.size)

    def get_queryset(self, request):
        # Freshness by the same rule as the state filter and the pages (selectors.fresh_q),
        # computed by the database with the row.
        fresh = ExpressionWrapper(selectors.fresh_q(), output_field=BooleanField())
        return super().get_queryset(request).annotate(is_fresh=fresh)

    @admin.display(description="state")
    def state(self, rendition):
        path = rendition_path(rendition)
        if path is None or not path.is_file():
            return format_html('<span style="color:var(--error-fg)">{}</span>', "file missing")
        if rendition.is_fresh:
            return "fresh"
        return format_html('<span style="color:var(--message-warning-fg, #a60)">{}</span>', "stale")

    def delete_model(self, request, obj):
        services.purge([obj])

    def delete_queryset(self, request, queryset):
        services.purge(queryset)

    @admin.action(description="Purge selected renditions (delete files and rows)", permissions=["delete"])
    def purge_selected(self, request, queryset):
        if request.POST.get("confirmed"):
            report = services.purge(queryset)
            self.message_user(request, f"Purged: {report}.", messages.SUCCESS)
            return None
        return self._confirm_purge(
            request,
            queryset,
            title="Purge the selected renditions?",
            action="purge_selected",
            selected=request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            hidden={"select_across": request.POST.get("select_across", "0")},
        )

    @admin.action(description="Re-transcode selected renditions", permissions=["queue"])
    def retranscode_selected(self, request, queryset):
        queued = services.retranscode(queryset)
        self.message_user(
            request,
            f"Queued {queued} re-transcodes; each rendition keeps being served until its new file replaces it.",
            messages.SUCCESS,
        )

    # -- dashboard and purges -----------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="audiocache_dashboard"),
            path("purge/", wrap(self.purge_view), name="audiocache_purge"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Audio cache",
            "opts": self.model._meta,
            **selectors.dashboard(),
        }
        return TemplateResponse(request, "admin/audiocache/dashboard.html", context)

    def purge_view(self, request):
        """``?older_than=N`` or ``?everything=1``: a confirmation page, then (POST) the purge."""
        if not self.has_delete_permission(request):
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        dashboard_url = reverse("admin:audiocache_dashboard")
        if params.get("everything"):
            queryset, title = CachedRendition.objects.all(), "Purge the whole cache?"
            hidden = {"everything": "1"}
        else:
            days = whole_number(params.get("older_than", ""), cleanup.MAX_DAYS)
            if days is None:
                self.message_user(request, f"Give a number of days from 0 to {cleanup.MAX_DAYS}.", messages.ERROR)
                return HttpResponseRedirect(dashboard_url)
            queryset = cleanup.older_than(days)
            title = f"Purge renditions not played for {days} days?"
            hidden = {"older_than": str(days)}
        if request.method == "POST" and params.get("confirmed"):
            report = services.purge(queryset)
            self.message_user(request, f"Purged: {report}.", messages.SUCCESS)
            return HttpResponseRedirect(dashboard_url)
        return self._confirm_purge(request, queryset, title=title, hidden=hidden, form_action=request.path)

    def _confirm_purge(self, request, queryset, *, title, action=None, selected=(), hidden=None, form_action=""):
        totals = queryset.aggregate(count=Count("id"), bytes=Sum("size"))
        by_quality = queryset.values("quality").annotate(count=Count("id"), bytes=Sum("size")).order_by("quality")
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "totals": totals,
            "by_quality": by_quality,
            "sample": queryset.select_related("track").order_by("-size")[:10],
            "action": action,
            "selected": selected,
            "hidden": (hidden or {}).items(),
            "form_action": form_action,
            "cache_dir": Path(settings.AUDIO_CACHE_DIR),
            "music_root": Path(settings.MUSIC_ROOT),
        }
        return TemplateResponse(request, "admin/audiocache/confirm_purge.html", context)
