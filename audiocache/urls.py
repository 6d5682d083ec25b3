from django.urls import path

from config import converters  # noqa: F401 (registers <id:...>)

from . import views

urlpatterns = [
    path("stream/<id:track_id>/", views.stream, name="stream"),
    path("events/batches/<uuid:batch_id>/", views.batch_events, name="batch-events"),
]
