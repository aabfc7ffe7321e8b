from django.contrib import admin
from django.urls import include, path

from .api import me

urlpatterns = [
    path("admin/", admin.site.urls),
    path("o/", include("ropc_provider.urls")),
    # RFC 8414 metadata at the root: /.well-known/oauth-authorization-server/o
    path("", include("ropc_provider.well_known_urls")),
    path("api/me/", me, name="api-me"),
]
