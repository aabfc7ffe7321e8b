from django.urls import include, path
from oauth2_provider.contrib.rest_framework import TokenHasScope
from rest_framework.response import Response
from rest_framework.views import APIView

from example_project.urls import urlpatterns as example_urlpatterns


class Orders(APIView):
    """A host's API that needs a scope, as the README shows: DOT's TokenHasScope on our tokens."""

    permission_classes = [TokenHasScope]
    required_scopes = ["write"]

    def post(self, request):
        return Response({"placed_by": request.auth.login_name})


# DOT's own endpoints beside ours, as in a host project that uses both.
urlpatterns = [
    path("api/orders/", Orders.as_view()),
    *example_urlpatterns,
    path("dot/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
