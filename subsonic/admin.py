from django.contrib import admin

from .models import ApiKey, Scrobble, StreamingPassword


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows made elsewhere (keys and passwords by their owners, scrobbles by apps): staff look at
    them and revoke one by deleting it."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    list_select_related = ["user"]
    list_filter = ["created_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]


@admin.register(StreamingPassword)
class StreamingPasswordAdmin(ReadOnlyAdmin):
    list_display = ["user", "created_at", "last_used_at"]
    list_select_related = ["user"]
    readonly_fields = ["user", "created_at", "last_used_at"]


@admin.register(Scrobble)
class ScrobbleAdmin(ReadOnlyAdmin):
    list_display = ["played_at", "user", "track", "client"]
    list_select_related = ["user", "track"]
    raw_id_fields = ["track"]
    readonly_fields = ["user", "track", "played_at", "client"]
