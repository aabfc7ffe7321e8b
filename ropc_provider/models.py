from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class ClientPolicy(models.Model):
    """What one DOT Application may do at our endpoint, beyond DOT's own fields.

    A password-grant Application without a policy row is served with the defaults below, so a
    project's existing DOT clients keep working; ``ropc_client create`` always writes one.
    """

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ropc_policy",
    )
    allowed_scopes = models.CharField(
        _("allowed scopes"),
        max_length=1000,
        blank=True,
        help_text=_("Space-separated. Blank allows every scope the project defines."),
    )
    access_token_lifetime = models.PositiveIntegerField(
        _("access token lifetime (seconds)"),
        null=True,
        blank=True,
        help_text=_("Blank uses ROPC_PROVIDER['ACCESS_TOKEN_LIFETIME']."),
    )
    refresh_token_lifetime = models.PositiveIntegerField(
        _("refresh token lifetime (seconds)"),
        null=True,
        blank=True,
        help_text=_("Blank uses ROPC_PROVIDER['REFRESH_TOKEN_LIFETIME']."),
    )
    issue_refresh_tokens = models.BooleanField(_("issue refresh tokens"), default=True)
    may_introspect = models.BooleanField(
        _("may introspect tokens"),
        default=False,
        help_text=_("A resource server that may call the introspection endpoint (RFC 7662)."),
    )

    class Meta:
        verbose_name = _("client policy")
        verbose_name_plural = _("client policies")

    def __str__(self):
        return f"Policy of {self.application}"

    @property
    def scope_list(self):
        return self.allowed_scopes.split()
