"""Cache admin: renditions, tasks, batches, the dashboard, purges and precache actions.

Deleting a rendition anywhere in the admin deletes its file too (audiocache.maintenance);
nothing here can touch MUSIC_ROOT.
"""

from datetime import timedelta
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Count, ExpressionWrapper, Q, Sum
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.numbers import whole_number

from . import dashboard, maintenance, queue
from .cache import rendition_path
from .models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask
from .qualities import BITRATES, QUALITY_NAMES
from .selectors import fresh_q

# --- Shared pieces -----------------------------------------------------------------------------


class QualitiesForm(forms.Form):
    qualities = forms.MultipleChoiceField(
        choices=[(q, f"{q} ({BITRATES[q]}k)") for q in QUALITY_NAMES],
        widget=forms.CheckboxSelectMultiple,
        initial=lambda: list(settings.AUDIO_CACHE_PRECACHE_QUALITIES),
    )
    overwrite = forms.BooleanField(required=False, label="Transcode again even where a fresh rendition exists")


def precache_action(modeladmin, request, queryset, *, tracks_of, what: str):
    """An admin action with an intermediate page that asks for the qualities, then queues one batch."""
    if "apply" in request.POST:
        form = QualitiesForm(request.POST)
        if form.is_valid():
            tracks = list(tracks_of(queryset))
            batch = queue.create_batch(
                tracks,
                form.cleaned_data["qualities"],
                label=f"Admin: {len(tracks)} tracks of {queryset.count()} {what}",
                user=request.user,
                force=form.cleaned_data["overwrite"],
            )
            summary = queue.batch_summary(batch)
            url = reverse("admin:audiocache_cachebatch_change", args=[batch.pk])
            modeladmin.message_user(
                request,
                format_html(
                    'Queued batch <a href="{}">{}</a>: {} renditions ({}).', url, batch.label, summary.total, summary
                ),
                messages.SUCCESS,
            )
            return None
    else:
        form = QualitiesForm()
    return TemplateResponse(
        request,
        "admin/audiocache/precache_form.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": f"Precache {queryset.count()} {what}",
            "form": form,
            "queryset": queryset,
            "action": request.POST.get("action"),
            "opts": modeladmin.model._meta,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            # "Select all N" must mean the same N on the confirmation as in the action.
            "select_across": request.POST.get("select_across", "0"),
        },
    )


def can_queue(request) -> bool:
    """Queueing, retrying or cancelling transcodes: whoever may change tasks (superusers, or
    staff given "Can change cache task"). View-only staff see everything and change nothing."""
    return request.user.has_perm("audiocache.change_cachetask")


class QueuePermissionMixin:
    def has_queue_permission(self, request) -> bool:
        return can_queue(request)


class TrackSearchMixin:
    """Admin search over the library's trigram index (mixtapes/search.py) instead of
    ``icontains`` on three columns, which reads every row of a 100,000-track library."""

    track_lookup = "track"

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        from mixtapes.search import matching_tracks

        matches = Q(**{f"{self.track_lookup}__in": matching_tracks(search_term).values("id")})
        return queryset.filter(matches | self.extra_search(search_term.strip())), False

    def extra_search(self, term: str) -> Q:
        return Q(pk__in=[])


def size_label(n) -> str:
    return filesizeformat(n or 0)


# --- Renditions --------------------------------------------------------------------------------


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
            return queryset.filter(fresh_q())
        if self.value() == "stale":
            return queryset.exclude(fresh_q())
        if self.value() == "missing":
            # No query can see the folder: list it once and compare (about 0.2 s for 100,000
            # files). A page of rows is what an operator needs; cacheclean --orphans fixes them all.
            missing = maintenance.rows_without_file(limit=MISSING_LIMIT)
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
            return queryset.alias(used=maintenance.last_used()).filter(used__lt=now - timedelta(days=int(value[:-1])))
        if value == "never":
            return queryset.filter(last_accessed_at__isnull=True)
        return queryset


@admin.register(CachedRendition)
class CachedRenditionAdmin(QueuePermissionMixin, TrackSearchMixin, admin.ModelAdmin):
    list_display = ["track_link", "quality", "bitrate_label", "size_label", "created_at", "last_accessed_at", "hit_count", "state"]  # fmt: skip
    list_filter = ["quality", FreshnessFilter, LastUsedFilter]
    list_select_related = ["track"]
    search_fields = ["track__title"]  # see TrackSearchMixin
    search_help_text = "Every word must appear in the track's title, artist, album or path."
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    actions = ["purge_selected", "retranscode_selected"]
    readonly_fields = [
        "track_link", "quality", "bitrate", "file_name", "size_label", "source_size", "source_mtime_ns",
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
        fresh = ExpressionWrapper(fresh_q(), output_field=BooleanField())
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
        maintenance.purge([obj])

    def delete_queryset(self, request, queryset):
        maintenance.purge(queryset)

    @admin.action(description="Purge selected renditions (delete files and rows)", permissions=["delete"])
    def purge_selected(self, request, queryset):
        if request.POST.get("confirmed"):
            report = maintenance.purge(queryset)
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
        by_quality: dict[str, list[int]] = {}
        for track_id, quality in queryset.values_list("track_id", "quality"):
            by_quality.setdefault(quality, []).append(track_id)
        queued = 0
        for quality, track_ids in by_quality.items():
            results = queue.enqueue(track_ids, [quality], force=True)
            queued += sum(1 for r in results.values() if isinstance(r, CacheTask))
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
            **dashboard.overview(),
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
            days = whole_number(params.get("older_than", ""), maintenance.MAX_DAYS)
            if days is None:
                self.message_user(request, f"Give a number of days from 0 to {maintenance.MAX_DAYS}.", messages.ERROR)
                return HttpResponseRedirect(dashboard_url)
            queryset = maintenance.older_than(days)
            title = f"Purge renditions not played for {days} days?"
            hidden = {"older_than": str(days)}
        if request.method == "POST" and params.get("confirmed"):
            report = maintenance.purge(queryset)
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


# --- Tasks -------------------------------------------------------------------------------------


class PriorityFilter(admin.SimpleListFilter):
    title = "priority"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("play", "Play requests"), ("precache", "Precache")]

    def queryset(self, request, queryset):
        if self.value() == "play":
            return queryset.filter(priority__gte=CacheTask.PRIORITY_PLAY)
        if self.value() == "precache":
            return queryset.filter(priority__lt=CacheTask.PRIORITY_PLAY)
        return queryset


FINISHED = [CacheTask.Status.DONE, CacheTask.Status.FAILED, CacheTask.Status.SKIPPED, CacheTask.Status.CANCELLED]


@admin.register(CacheTask)
class CacheTaskAdmin(QueuePermissionMixin, TrackSearchMixin, admin.ModelAdmin):
    list_display = ["track", "quality", "status", "priority", "attempts", "progress_bar", "short_error", "worker_id", "created_at", "started_at", "finished_at"]  # fmt: skip
    list_filter = ["status", "quality", PriorityFilter, "created_at"]
    list_select_related = ["track"]
    search_fields = ["track__title"]  # see TrackSearchMixin
    search_help_text = "Every word in the track's title, artist, album or path; or a worker; or words of the error."
    list_per_page = 100
    show_full_result_count = False
    actions = ["retry", "cancel", "delete_finished"]
    readonly_fields = [
        "track", "quality", "status", "priority", "attempts", "progress_bar", "full_error", "worker_id",
        "lease_expires_at", "available_at", "force", "source_size", "source_mtime_ns", "created_at",
        "started_at", "finished_at", "updated_at",
    ]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # tasks change through the actions only

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting a running task would orphan its worker
        return actions

    def extra_search(self, term: str) -> Q:
        # Tasks are also found by worker ("host:pid") and by words of their error.
        return Q(worker_id__startswith=term) | Q(error__icontains=term)

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, task):
        percent = round(task.progress * 100)
        return format_html('<progress value="{}" max="100" title="{}%">{}%</progress>', percent, percent, percent)

    @admin.display(description="error")
    def short_error(self, task):
        lines = task.error.strip().splitlines()
        return (lines[-1][:120] + ("…" if len(lines[-1]) > 120 else "")) if lines else ""

    @admin.display(description="error (ffmpeg's last lines)")
    def full_error(self, task):
        return format_html('<pre style="white-space:pre-wrap;max-width:60rem">{}</pre>', task.error or "—")

    @admin.action(description="Retry selected failed or cancelled tasks", permissions=["queue"])
    def retry(self, request, queryset):
        retried = 0
        for task in queryset.filter(status__in=[CacheTask.Status.FAILED, CacheTask.Status.CANCELLED]):
            # force: a failed source is quarantined until its file changes; an admin overrides that.
            result = queue.enqueue([task.track_id], [task.quality], priority=task.priority, force=True)
            retried += sum(1 for r in result.values() if isinstance(r, CacheTask))
        self.message_user(request, f"Queued {retried} tasks again.", messages.SUCCESS)

    @admin.action(description="Cancel selected pending or running tasks", permissions=["queue"])
    def cancel(self, request, queryset):
        cancelled = queue.cancel(queryset.values_list("pk", flat=True))
        self.message_user(request, f"Cancelled {cancelled} tasks (running ones stop within seconds).", messages.SUCCESS)

    @admin.action(description="Delete selected finished tasks", permissions=["delete"])
    def delete_finished(self, request, queryset):
        deleted, _ = queryset.filter(status__in=FINISHED).delete()
        self.message_user(request, f"Deleted {deleted} finished tasks; active ones were kept.", messages.SUCCESS)


# --- Batches -----------------------------------------------------------------------------------


class CacheBatchItemInline(admin.TabularInline):
    model = CacheBatchItem
    fields = ["track", "quality", "task", "outcome", "note"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        # Each row shows its track and its task (whose name is its track's): no query per row.
        return super().get_queryset(request).select_related("track", "task__track")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CacheBatch)
class CacheBatchAdmin(admin.ModelAdmin):
    list_display = ["label", "created_by", "mixtape", "created_at", "finished_at", "summary"]
    list_select_related = ["created_by", "mixtape"]
    search_fields = ["label"]
    readonly_fields = ["label", "created_by", "mixtape", "created_at", "finished_at", "summary"]
    inlines = [CacheBatchItemInline]

    def has_add_permission(self, request):
        return False

    @admin.display(description="summary")
    def summary(self, batch):
        return str(queue.batch_summary(batch))


# --- Renditions inline for tracks and mixtapes (used by mixtapes/admin.py) ----------------------


class RenditionInline(admin.TabularInline):
    model = CachedRendition
    fields = ["quality", "bitrate", "file_name", "size_label", "created_at", "last_accessed_at", "hit_count"]
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
        CachedRendition.objects.filter(track_id__in=track_ids).select_related("track").order_by("track_id", "quality")
    )
    if not rows:
        return format_html("<p>{}</p>", "No renditions yet.")
    body = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((r.track, r.quality, size_label(r.size), r.hit_count) for r in rows),
    )  # fmt: skip
    return format_html(
        "<table><thead><tr><th>Track</th><th>Quality</th><th>Size</th><th>Hits</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )
