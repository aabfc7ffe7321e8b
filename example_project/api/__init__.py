from rest_framework.decorators import api_view
from rest_framework.response import Response


@api_view(["GET"])
def me(request):
    """Who the bearer token belongs to, in which realm, and what it may do."""
    grant = request.auth  # ropc_provider.authentication.BearerAuthentication's
    return Response({"username": grant.login_name, "realm": grant.realm, "scopes": sorted(grant.scopes)})
