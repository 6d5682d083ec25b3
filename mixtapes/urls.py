from django.urls import path

from config import converters  # noqa: F401 (registers <id:...> and <token:...>)

from . import account_views, link_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("mixtapes/", views.mixtape_list, name="mixtape-list"),
    path("editor/new/", views.editor, name="editor-new"),
    path("editor/<slug:slug>/", views.editor, name="editor"),
    path("editor/<slug:slug>/delete/", views.mixtape_delete, name="mixtape-delete"),
    path("library/search/", views.library_search, name="library-search"),
    path("account/", account_views.account, name="account"),
    path("share/<slug:slug>/", views.share, name="share"),
    path("share/<slug:slug>/cover/", views.cover, name="mixtape-cover"),
    path("tracks/<id:track_id>/cover/", views.track_cover, name="track-cover"),
    path("listen/<token:token>/", link_views.listen, name="link"),
    path("listen/<token:token>/cover/", link_views.link_cover, name="link-cover"),
    path("listen/<token:token>/playlist.m3u8", link_views.link_playlist, name="link-playlist"),
    path("listen/<token:token>/download/", link_views.link_download, name="link-download"),
    path("editor/<slug:slug>/links/", link_views.create_link, name="link-create"),
    path("editor/<slug:slug>/links/<id:link_id>/revoke/", link_views.revoke_link, name="link-revoke"),
    path("editor/<slug:slug>/links/<id:link_id>/reissue/", link_views.reissue_link, name="link-reissue"),
]
