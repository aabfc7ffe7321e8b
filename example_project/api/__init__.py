from rest_framework.decorators import api_view
from rest_framework.response import Response

from ropc_provider.directories import identity_of


@api_view(["GET"])
def me(request):
    """Who the bearer token belongs to, in which realm, and what it may do."""
    identity = identity_of(request.user)
    return Response(
        {
            "username": identity.login_name,
            "realm": identity.realm.slug,
            "scopes": sorted(request.auth.scope.split()),
        }
    )
