class RopcError(Exception):
    """Base of the errors our services raise; the message is safe to show an operator."""


class InvalidInput(RopcError, ValueError):
    """Bad input to a service (CLI argument, admin form field): nothing was written."""


class RealmError(RopcError):
    """The realm of a sign-in cannot be used; decided before any password is checked."""


class RealmRequired(RealmError):
    pass


class RealmNotAvailable(RealmError):
    """Unknown, or not one this client may use: the same answer, so realm names do not leak."""


class RealmInactive(RealmError):
    pass


class RefreshTokenAlreadyUsed(Exception):
    """Another request rotated this refresh token first."""


class RefreshRefused(Exception):
    """A refresh token that cannot be redeemed; ``description`` is a stable text for the client
    when it should act on the reason (sign in again, expired), else None."""

    def __init__(self, description=None):
        super().__init__(description or "refused")
        self.description = description
