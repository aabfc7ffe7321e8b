"""For the host's own DOT endpoints: a refresh token we issued is refreshed at our endpoint only.

DOT's refresh grant knows nothing of our session limits, realms, cutoff or audit trail, so a
refresh token of ours presented at DOT's ``TokenView`` would renew a session past every limit we
keep. Set ``OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "ropc_provider.dot.OAuth2Validator"``, or
mix ``KeepsOurSessionsOut`` into a validator of your own; ``manage.py check`` fails
(``ropc_provider.E009``) while DOT's token endpoint is routed without it."""

from django.db import router, transaction
from oauth2_provider import oauth2_validators
from oauth2_provider.models import get_refresh_token_model
from oauthlib.oauth2.rfc6749 import errors

from . import tokens
from .oauth2_validators import EndsTheSessionOfARevokedToken

RefreshToken = get_refresh_token_model()


class KeepsOurSessionsOut(EndsTheSessionOfARevokedToken):
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        # Asked before DOT's own checks, which would act on a token of ours too: a replayed one
        # would have its family revoked there, under our session's feet. Our endpoint alone
        # decides what a token of ours means (reuse, grace, limits).
        families = RefreshToken.objects.filter(token_checksum=tokens.checksum(refresh_token))
        if any(tokens.family_begun_here(found) for found in families.only("token_family")):
            return False
        return super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)

    def save_bearer_token(self, token, request, *args, **kwargs):
        presented = getattr(request, "refresh_token_instance", None)
        if request.grant_type != "refresh_token" or presented is None:
            return super().save_bearer_token(token, request, *args, **kwargs)
        with transaction.atomic(using=router.db_for_write(RefreshToken)):
            # Our endpoint may have taken the family over (and rotated the token) since DOT
            # validated it: read it again under the lock taking over waits for, so one of the two
            # endpoints has the token, never both.
            # Gone meanwhile (cleartokens, its user or client deleted): refused, not DOT's 500.
            if not tokens.hold(presented.pk) or any(
                tokens.family_begun_here(found)
                for found in RefreshToken.objects.filter(pk=presented.pk).only("token_family")
            ):
                raise errors.InvalidGrantError(request=request)
            return super().save_bearer_token(token, request, *args, **kwargs)


class OAuth2Validator(KeepsOurSessionsOut, oauth2_validators.OAuth2Validator):
    """DOT's validator, keeping our sessions out of DOT's refresh grant."""
