"""Precache batches in the admin: each batch, its items and how they ended."""

from django.contrib import admin

from .. import selectors
from ..models import CacheBatch, CacheBatchItem


class CacheBatchItemInline(admin.TabularInline):
    model = CacheBatchItem
    fields = ["track", "format", "quality", "task", "outcome", "note"]
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
        return str(selectors.batch_counts(batch))
