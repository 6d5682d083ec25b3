from django.contrib import admin

from .models import ApiKey, Scrobble, StreamingPassword


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Staff see every key and revoke one by deleting it; keys are made by their owners only."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StreamingPassword)
class StreamingPasswordAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "last_used_at"]
    readonly_fields = ["user", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Scrobble)
class ScrobbleAdmin(admin.ModelAdmin):
    list_display = ["played_at", "user", "track", "client"]
    list_select_related = ["user", "track"]
    raw_id_fields = ["track"]
    readonly_fields = ["user", "track", "played_at", "client"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
