from django.urls import include, path

from example_project.urls import urlpatterns as example_urlpatterns

# DOT's own endpoints beside ours, as in a host project that uses both.
urlpatterns = [
    *example_urlpatterns,
    path("dot/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
