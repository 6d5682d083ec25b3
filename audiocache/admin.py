from django.contrib import admin

from .models import CacheBatch, CacheBatchItem, CachedRendition, CacheTask


@admin.register(CachedRendition)
class CachedRenditionAdmin(admin.ModelAdmin):
    list_display = ["track", "quality", "bitrate", "size", "created_at", "last_accessed_at", "hit_count"]
    list_filter = ["quality"]
    list_select_related = ["track"]
    search_fields = ["track__title", "track__artist", "track__path"]
    raw_id_fields = ["track"]
    date_hierarchy = "created_at"


@admin.register(CacheTask)
class CacheTaskAdmin(admin.ModelAdmin):
    list_display = ["track", "quality", "status", "priority", "attempts", "worker_id", "created_at", "finished_at"]
    list_filter = ["status", "quality"]
    list_select_related = ["track"]
    search_fields = ["track__title", "track__artist", "track__path"]
    raw_id_fields = ["track"]


class CacheBatchItemInline(admin.TabularInline):
    model = CacheBatchItem
    fields = ["track", "quality", "task", "outcome", "note"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        # Each row shows its track and its task (whose name is its track's): no query per row.
        return super().get_queryset(request).select_related("track", "task__track")


@admin.register(CacheBatch)
class CacheBatchAdmin(admin.ModelAdmin):
    list_display = ["label", "created_by", "mixtape", "created_at", "finished_at"]
    list_select_related = ["created_by", "mixtape"]
    search_fields = ["label"]
    readonly_fields = ["label", "created_by", "mixtape", "created_at", "finished_at"]
    inlines = [CacheBatchItemInline]
