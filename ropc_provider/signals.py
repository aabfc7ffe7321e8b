from django.dispatch import Signal

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["sign_in_succeeded", "sign_in_failed", "sessions_revoked", "locked_out", "throttled"]

# Never carries a password. ``login`` is the normalised login name as sent.
# A password grant succeeded: ``user``, ``realm``, ``login``, ``request`` (the Django request).
sign_in_succeeded = Signal()
# A password grant's credentials were refused: ``realm``, ``login``, ``request``.
sign_in_failed = Signal()
# Every session of a user was ended: ``user``, ``realm``, ``reason`` (a SessionCutoff reason).
sessions_revoked = Signal()
# An identity was locked after too many failures: ``realm_slug``, ``login``, ``seconds``.
locked_out = Signal()
# A client address went over its failure limit: ``ip``.
throttled = Signal()
