from django.dispatch import Signal

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = [
    "sign_in_succeeded",
    "sign_in_failed",
    "sessions_revoked",
    "session_ended",
    "locked_out",
    "throttled",
    "second_factor_enrolled",
    "second_factor_removed",
    "challenge_issued",
    "factor_verified",
    "factor_failed",
]

# Never carries a password. ``login`` is the normalised login name as sent.
# A password grant succeeded: ``user``, ``realm``, ``login``, ``request`` (the Django request).
sign_in_succeeded = Signal()
# A password grant's credentials were refused: ``realm``, ``login``, ``request``.
sign_in_failed = Signal()
# Every session of a user was ended: ``user``, ``realm``, ``reason`` (a SessionCutoff reason).
sessions_revoked = Signal()
# One session ended, once the end is committed: ``session_id``, ``user_id``, ``realm`` (its slug),
# ``login``, ``client_id``, ``reason`` (a Session end reason). Sent for every way we end one; a
# session nobody presents again past its limits ends (and is heard) when its token comes back.
session_ended = Signal()
# An identity was locked after too many failures: ``realm_slug``, ``login``, ``seconds``.
locked_out = Signal()
# A client address went over its failure limit: ``ip``.
throttled = Signal()

# Never carry a secret, a code or an auth_session.
# A TOTP authenticator became active (with new recovery codes): ``user``.
second_factor_enrolled = Signal()
# A user's authenticator and recovery codes were removed (their sessions ended): ``user``.
second_factor_removed = Signal()
# A password was right and a second factor is due: ``user``, ``realm``, ``enrol`` (True when the
# account must enrol one first), ``request``.
challenge_issued = Signal()
# A second factor was verified: ``user``, ``realm``, ``method`` ("otp" or "recovery_code"), ``request``.
factor_verified = Signal()
# A second-factor code was refused: ``user``, ``realm``, ``request``.
factor_failed = Signal()
