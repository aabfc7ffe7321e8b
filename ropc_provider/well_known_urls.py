"""RFC 8414 metadata where §3 puts it: include these at the root of your URLconf,
``path("", include("ropc_provider.well_known_urls"))``; for issuer ``https://host/o`` it answers
``/.well-known/oauth-authorization-server/o``."""

from django.urls import re_path

from . import views

urlpatterns = [
    re_path(
        r"^\.well-known/oauth-authorization-server(?P<issuer_path>/.*)?$",
        views.AuthorizationServerMetadataView.as_view(at_root=True),
        name="ropc-oauth-authorization-server",
    ),
]
