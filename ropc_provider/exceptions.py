class RopcError(Exception):
    """Base of the errors our services raise; the message is safe to show an operator."""


class InvalidInput(RopcError, ValueError):
    """Bad input to a service (CLI argument, admin form field): nothing was written."""
