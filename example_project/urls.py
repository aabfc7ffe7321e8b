from django.contrib import admin
from django.urls import include, path

from .api import me

urlpatterns = [
    path("admin/", admin.site.urls),
    path("o/", include("ropc_provider.urls")),
    path("api/me/", me, name="api-me"),
]
