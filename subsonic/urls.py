from django.urls import path, re_path

from . import account, views

urlpatterns = [
    # /rest/ping and /rest/ping.view: apps use either.
    re_path(r"^rest/(?P<name>[A-Za-z0-9]{1,40})(?:\.view)?$", views.endpoint, name="subsonic"),
    path("account/apps/", account.connected_apps, name="connected-apps"),
]
