"""For the project's own login pages (the admin's too): Django's ``ModelBackend``, but no
directory account gets in.

A directory account is a Django user whose username is internal (``login@realm``): Django's
backend would sign it in with its password at any login page of the project, without its realm's
lockout, throttling or second factor, which only our endpoints apply. Set
``AUTHENTICATION_BACKENDS = ["ropc_provider.backends.ModelBackend"]``; ``check --deploy`` warns
(``ropc_provider.W008``) while Django's own is configured."""

from django.contrib.auth import backends, get_user_model

from .models import RealmAccount


class ModelBackend(backends.ModelBackend):
    """Django's ModelBackend, for the project's users only."""

    def user_can_authenticate(self, user):
        # Asked after the password hash, so a directory account costs what a wrong password costs.
        return super().user_can_authenticate(user) and not RealmAccount.objects.filter(user_id=user.pk).exists()

    def get_user(self, user_id):
        # Every request of a signed-in user asks this: the account's absence in the same query.
        User = get_user_model()
        user = User._default_manager.filter(pk=user_id, realm_account__isnull=True).first()
        return user if user is not None and super().user_can_authenticate(user) else None
