"""What an ID token and the userinfo endpoint say about a user."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from .conf import ropc_settings
from .exceptions import ClaimsHookError
from .models import Subject

# Claims that identify the token or the user; the claims hook cannot set them.
PROTECTED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "realm",
        "preferred_username",
        "amr",
        "azp",
        "sid",
    }
)


def subject_of(user):
    try:
        return user.oidc_subject.sub
    except Subject.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            subject = Subject.objects.create(user=user)
    except IntegrityError:  # created concurrently
        subject = Subject.objects.get(user=user)
    user.oidc_subject = subject
    return subject.sub


def _standard_claims(user, scopes):
    claims = {}
    if "profile" in scopes:
        profile = {
            "name": user.get_full_name() if hasattr(user, "get_full_name") else "",
            "given_name": getattr(user, "first_name", ""),
            "family_name": getattr(user, "last_name", ""),
        }
        claims.update({name: value for name, value in profile.items() if value})
    if "email" in scopes:
        email = getattr(user, get_user_model().get_email_field_name(), "")
        if email:
            claims["email"] = email
            # Only a user model that knows says it (a boolean email_verified field or property):
            # a guess either way would be a false claim.
            verified = getattr(user, "email_verified", None)
            if isinstance(verified, bool):
                claims["email_verified"] = verified
    return claims


def _hook_claims(*, user, identity, client, scopes, request):
    hook = ropc_settings.CLAIMS_HOOK
    if hook is None:
        return {}
    extra = hook(user=user, realm=identity.realm, client=client, scopes=list(scopes), request=request)
    if not isinstance(extra, dict) or not all(isinstance(name, str) for name in extra):
        raise ClaimsHookError("ROPC_PROVIDER['CLAIMS_HOOK'] must return a dict with string keys.")
    protected = sorted(PROTECTED_CLAIMS & set(extra))
    if protected:
        raise ClaimsHookError(
            f"ROPC_PROVIDER['CLAIMS_HOOK'] returned protected claim(s) {', '.join(protected)}; "
            "they identify the token or the user and only ropc_provider sets them."
        )
    return extra


def user_claims(*, user, identity, client, scopes, request=None):
    """The claims about ``user`` that ``scopes`` allow: the ID token's user part, and userinfo."""
    claims = {
        "sub": subject_of(user),
        "realm": identity.realm.slug,
        "preferred_username": identity.login_name,
        **_standard_claims(user, scopes),
    }
    claims.update(_hook_claims(user=user, identity=identity, client=client, scopes=scopes, request=request))
    return claims
