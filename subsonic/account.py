"""The "Connected apps" page: a user's API keys and streaming password for music apps.

A new key or password is shown once, in the answer to the POST that made it (never carried in
a message, which could sit in a cookie), and only its digest or ciphertext is kept."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from config.numbers import MAX_ID, whole_number

from . import services
from .models import ApiKey, StreamingPassword


@login_required
@require_http_methods(["GET", "POST"])
def connected_apps(request):
    if not settings.SUBSONIC_ENABLED:
        raise Http404("The Subsonic API is turned off (SUBSONIC_ENABLED=false).")
    shown = {}
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "create-key":
        shown["api_key"] = services.create_api_key(request.user, request.POST.get("name", ""))
    elif action == "revoke-key":
        key_id = whole_number(request.POST.get("key", ""), MAX_ID)
        if key_id and services.revoke_api_key(request.user, key_id):
            messages.success(request, "The key was revoked: apps using it are logged out.")
        return redirect("connected-apps")
    elif action == "new-password":
        shown["streaming_password"] = services.new_streaming_password(request.user)
    elif action == "revoke-password":
        if services.revoke_streaming_password(request.user):
            messages.success(request, "The streaming password was revoked.")
        return redirect("connected-apps")
    context = {
        "keys": ApiKey.objects.filter(user=request.user),
        "password": StreamingPassword.objects.filter(user=request.user).first(),
        "server": request.build_absolute_uri("/").rstrip("/"),
        **shown,
    }
    response = render(request, "subsonic/connected_apps.html", context)
    if shown:
        response["Cache-Control"] = "no-store"  # a secret is on this page
    return response
