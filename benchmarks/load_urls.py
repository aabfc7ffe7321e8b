from django.urls import path
from oauth2_provider.views import TokenView

from example_project.urls import urlpatterns as example_urlpatterns

urlpatterns = [*example_urlpatterns, path("dot/token/", TokenView.as_view())]
