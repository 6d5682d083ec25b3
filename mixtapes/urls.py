from django.urls import path

from config import converters  # noqa: F401 (registers <id:...>)

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("mixtapes/", views.mixtape_list, name="mixtape-list"),
    path("editor/new/", views.editor, name="editor-new"),
    path("editor/<slug:slug>/", views.editor, name="editor"),
    path("editor/<slug:slug>/delete/", views.mixtape_delete, name="mixtape-delete"),
    path("library/search/", views.library_search, name="library-search"),
    path("share/<slug:slug>/", views.share, name="share"),
    path("share/<slug:slug>/cover/", views.cover, name="mixtape-cover"),
    path("tracks/<id:track_id>/cover/", views.track_cover, name="track-cover"),
]
