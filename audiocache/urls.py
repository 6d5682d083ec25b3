from django.urls import path

from . import views

urlpatterns = [
    path("stream/<int:track_id>/", views.stream, name="stream"),
    path("events/batches/<uuid:batch_id>/", views.batch_events, name="batch-events"),
]
