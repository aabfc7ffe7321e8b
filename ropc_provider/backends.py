"""For the project's own login pages (the admin's too): Django's ``ModelBackend``, but no
directory account gets in.

A directory account is a Django user whose username is internal (``login@realm``): Django's
backend would sign it in with its password at any login page of the project, without its realm's
lockout, throttling or second factor, which only our endpoints apply. Set
``AUTHENTICATION_BACKENDS = ["ropc_provider.backends.ModelBackend"]``; ``check --deploy`` warns
(``ropc_provider.W008``) while Django's own is configured."""

from asgiref.sync import sync_to_async
from django.contrib.auth import backends, get_user_model
from django.contrib.auth.base_user import BaseUserManager

from .accounts import is_directory_account
from .realms import project_users


class ModelBackend(backends.ModelBackend):
    """Django's ModelBackend, for the project's users only."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        User = get_user_model()
        username = kwargs.get(User.USERNAME_FIELD) if username is None else username
        if username is None or password is None:
            return None
        # A directory account is found as no user at all, before its password is touched: one
        # hash, no write, a wrong password's answer, so this page confirms no directory password.
        if type(User._default_manager).get_by_natural_key is BaseUserManager.get_by_natural_key:
            user = project_users().filter(**{User.USERNAME_FIELD: username}).first()  # one query
        else:  # the manager finds users its own way (case-insensitively, say)
            try:
                user = User._default_manager.get_by_natural_key(username)
            except User.DoesNotExist:
                user = None
            if user is not None and is_directory_account(user):
                user = None
        if user is None:
            User().set_password(password)  # the hash an unknown name costs, as Django's does
            return None
        return user if user.check_password(password) and self._may_sign_in(user) else None

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and not is_directory_account(user)

    def _may_sign_in(self, user):
        """``user_can_authenticate`` for a user found among the project's users: a subclass's own
        rule still decides, without asking again what the lookup settled."""
        if type(self).user_can_authenticate is ModelBackend.user_can_authenticate:
            return backends.ModelBackend.user_can_authenticate(self, user)
        return self.user_can_authenticate(user)

    def get_user(self, user_id):
        # Every request of a signed-in user asks this: the account's absence in the same query.
        user = project_users().filter(pk=user_id).first()
        return user if user is not None and self._may_sign_in(user) else None

    # Django's async versions would run the queries above in the event loop.
    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        return await sync_to_async(self.authenticate)(request, username=username, password=password, **kwargs)

    async def aget_user(self, user_id):
        return await sync_to_async(self.get_user)(user_id)
