from django.urls import path

from . import views

app_name = "ropc_provider"

urlpatterns = [
    path("authorize/", views.AuthorizationView.as_view(), name="authorize"),
    path("token/", views.TokenView.as_view(), name="token"),
    path("authorize-challenge/", views.AuthorizationChallengeView.as_view(), name="authorize-challenge"),
    path("revoke_token/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", views.IntrospectTokenView.as_view(), name="introspect"),
    path("revoke_sessions/", views.RevokeSessionsView.as_view(), name="revoke-sessions"),
    path("sessions/", views.OwnSessionsView.as_view(http_method_names=["get"]), name="sessions"),
    path("sessions/<str:session_id>/", views.OwnSessionsView.as_view(http_method_names=["delete"]), name="session"),
    path("mfa/", views.OwnFactorView.as_view(http_method_names=["get"]), name="mfa"),
    path("mfa/totp/", views.OwnFactorView.as_view(action="begin"), name="mfa-totp"),
    path("mfa/totp/confirm/", views.OwnFactorView.as_view(action="confirm"), name="mfa-totp-confirm"),
    path("mfa/totp/remove/", views.OwnFactorView.as_view(action="remove"), name="mfa-totp-remove"),
    path("mfa/recovery-codes/", views.OwnFactorView.as_view(action="regenerate"), name="mfa-recovery-codes"),
    path("userinfo/", views.UserInfoView.as_view(), name="userinfo"),
    path(".well-known/openid-configuration", views.DiscoveryView.as_view(), name="openid-configuration"),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks"),
    path(
        ".well-known/oauth-authorization-server",
        views.AuthorizationServerMetadataView.as_view(),
        name="oauth-authorization-server",
    ),
]
