"""Transcode tasks in the admin: the queue and its history, with retry, cancel and cleanup."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils.html import format_html

from mixtapes.admin import TrackSearchMixin

from .. import services
from ..models import CacheTask
from .actions import QueuePermissionMixin


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
    list_display = ["track", "format", "quality", "status", "priority", "attempts", "progress_bar", "short_error", "worker_id", "created_at", "started_at", "finished_at"]  # fmt: skip
    list_filter = ["status", "format", "quality", PriorityFilter, "created_at"]
    list_select_related = ["track"]
    search_fields = ["track__title"]  # see TrackSearchMixin
    search_help_text = "Every word in the track's title, artist, album or path; or a worker; or words of the error."
    list_per_page = 100
    show_full_result_count = False
    actions = ["retry", "cancel", "delete_finished"]
    readonly_fields = [
        "track", "format", "quality", "status", "priority", "attempts", "progress_bar", "full_error", "worker_id",
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
        line = task.error_line
        return line[:120] + ("…" if len(line) > 120 else "")

    @admin.display(description="error (ffmpeg's last lines)")
    def full_error(self, task):
        return format_html('<pre style="white-space:pre-wrap;max-width:60rem">{}</pre>', task.error or "—")

    @admin.action(description="Retry selected failed or cancelled tasks", permissions=["queue"])
    def retry(self, request, queryset):
        retried = services.retry_tasks(queryset)
        self.message_user(request, f"Queued {retried} tasks again.", messages.SUCCESS)

    @admin.action(description="Cancel selected pending or running tasks", permissions=["queue"])
    def cancel(self, request, queryset):
        cancelled = services.cancel_tasks(queryset.values_list("pk", flat=True))
        self.message_user(request, f"Cancelled {cancelled} tasks (running ones stop within seconds).", messages.SUCCESS)

    @admin.action(description="Delete selected finished tasks", permissions=["delete"])
    def delete_finished(self, request, queryset):
        deleted, _ = queryset.filter(status__in=FINISHED).delete()
        self.message_user(request, f"Deleted {deleted} finished tasks; active ones were kept.", messages.SUCCESS)
