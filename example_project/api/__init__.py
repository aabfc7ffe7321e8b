from rest_framework.decorators import api_view
from rest_framework.response import Response


@api_view(["GET"])
def me(request):
    """Who the bearer token belongs to, and what it may do."""
    return Response({"username": request.user.get_username(), "scopes": sorted(request.auth.scope.split())})
