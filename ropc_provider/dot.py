"""For the host's own DOT endpoints: a refresh token we issued is refreshed at our endpoint only.

DOT's refresh grant knows nothing of our session limits, realms, cutoff or audit trail, so a
refresh token of ours presented at DOT's ``TokenView`` would renew a session past every limit we
keep. Set ``OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "ropc_provider.dot.OAuth2Validator"``, or
mix ``KeepsOurSessionsOut`` into a validator of your own; ``manage.py check`` fails
(``ropc_provider.E009``) while DOT's token endpoint is routed without it."""

from oauth2_provider import oauth2_validators

from .models import Session


class KeepsOurSessionsOut:
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        # Every token we issue belongs to a session whose id is its token family.
        family = request.refresh_token_instance.token_family
        return family is None or not Session.objects.filter(pk=family).exists()


class OAuth2Validator(KeepsOurSessionsOut, oauth2_validators.OAuth2Validator):
    """DOT's validator, keeping our sessions out of DOT's refresh grant."""
