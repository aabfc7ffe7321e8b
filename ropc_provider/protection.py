"""Attack protection: per-identity lockout and per-IP throttling, counted in Django's cache.

A password check is announced before it runs (the cache's atomic increment of the identity's
checks in flight) and settled after: a failure adds to the identity's consecutive failures and to
its address's failures in the window, a success clears the identity's. No more checks may run at
once than failures are left before the lock, so of any number of concurrent guesses at most the
threshold reach a password hash; the others are refused before hashing. Counters live in the
cache so that several app servers on one Redis share them.
"""

import hashlib
import ipaddress
import logging
import math
import time
from contextlib import contextmanager

from django.core.cache import caches

from . import signals
from .conf import ropc_settings
from .exceptions import RopcError

log = logging.getLogger("ropc_provider")


class TooManyAttempts(RopcError):
    def __init__(self, retry_after):
        super().__init__("Too many failed attempts; try again later.")
        self.retry_after = max(1, math.ceil(retry_after))


class ProtectionUnavailable(RopcError):
    """The cache is unreachable and ROPC_PROVIDER['PROTECTION_FAIL_CLOSED'] is on."""


def _cache():
    return caches[ropc_settings.PROTECTION_CACHE]


def _digest(*parts):
    # Keys of fixed length and alphabet, whatever the login name; no login name in the cache.
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def identity_key(realm_slug, login_key):
    return f"ropc:id:{_digest(realm_slug, login_key)}"


def _counted_address(ip):
    """One IPv4 address, or one IPv6 /64 (what one subscriber gets): an attacker cycling through
    the addresses of their own /64 is still one attacker. IPv4-mapped IPv6 is its IPv4."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _ip_key(ip):
    window = ropc_settings.IP_FAILURE_WINDOW
    return f"ropc:ip:{_digest(_counted_address(ip))}:{int(time.time() // window)}"


def _count(key, timeout):
    """Atomically add one to a counter that expires ``timeout`` after its first count."""
    cache = _cache()
    try:
        return cache.incr(key)  # the usual case: the counter exists
    except ValueError:
        if cache.add(key, 1, timeout):
            return 1
        return cache.incr(key)  # another request created it meanwhile


def _fail_open(error):
    if ropc_settings.PROTECTION_FAIL_CLOSED:
        log.error("Attack protection unavailable, refusing sign-ins: %s", type(error).__name__)
        raise ProtectionUnavailable("Sign-in is temporarily unavailable.") from None
    log.error("Attack protection unavailable, serving without it: %s", type(error).__name__)


# -- client IP ---------------------------------------------------------------------------------


def _valid_ip(value):
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(meta, *, may_forward_user_ip=False):
    """The address attempts are counted against.

    By default the socket's peer. Behind N trusted proxies (``TRUSTED_PROXY_COUNT``) the address
    the outermost of them saw, read from the right of X-Forwarded-For, so a client cannot spoof it
    by prepending entries; or a header the proxy sets (``CLIENT_IP_HEADER``). A confidential
    client flagged to do so may name its end user's address in ``FORWARDED_USER_IP_HEADER``:
    otherwise a server-side app would put all its users behind one address.
    """
    ip = _valid_ip(meta.get("REMOTE_ADDR", "")) or "unknown"
    if ropc_settings.CLIENT_IP_HEADER:
        ip = _valid_ip(meta.get(ropc_settings.CLIENT_IP_HEADER, "")) or ip
    elif ropc_settings.TRUSTED_PROXY_COUNT:
        hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= ropc_settings.TRUSTED_PROXY_COUNT:
            ip = _valid_ip(hops[-ropc_settings.TRUSTED_PROXY_COUNT]) or ip
    if may_forward_user_ip:
        header = "HTTP_" + ropc_settings.FORWARDED_USER_IP_HEADER.upper().replace("-", "_")
        ip = _valid_ip(meta.get(header, "")) or ip
    return ip


# -- attempts -----------------------------------------------------------------------------------


def _lock_period(lockouts):
    base, ceiling = ropc_settings.LOCKOUT_SECONDS, ropc_settings.LOCKOUT_MAX_SECONDS
    return min(ceiling, base * 2 ** max(0, lockouts - 1))


def _refuse_if_throttled(ip, failures):
    """Refuse an address past its failure limit for the current window."""
    if failures >= ropc_settings.IP_FAILURE_LIMIT:
        window = ropc_settings.IP_FAILURE_WINDOW
        signals.throttled.send(sender=begin, ip=ip)
        raise TooManyAttempts(window - time.time() % window)


def _count_ip_failure(ip):
    _count(_ip_key(ip), ropc_settings.IP_FAILURE_WINDOW)


class Attempt:
    """One password check, counted before it ran; settle it with ``succeeded()`` or ``failed()``
    once the sign-in stands or falls."""

    def __init__(self, realm_slug, login_key, ip, counted, had_failures=True):
        self.realm_slug, self.login_key, self.ip, self.counted = realm_slug, login_key, ip, counted
        self.key = identity_key(realm_slug, login_key)
        self.had_failures = had_failures

    def _settle(self, outcome):
        if not self.counted:  # the cache was down (fail-open): nothing to settle
            return
        try:
            _cache().decr(f"{self.key}:checking")
            outcome()
        except ValueError:
            outcome()  # the in-flight counter expired meanwhile
        except Exception as error:
            _fail_open(error)

    def succeeded(self):
        def reset():
            if self.had_failures:
                _cache().delete_many([f"{self.key}:failures", f"{self.key}:lockouts"])

        self._settle(reset)

    def failed(self):
        def count_failure():
            _count_ip_failure(self.ip)
            failures = _count(f"{self.key}:failures", ropc_settings.LOCKOUT_RESET_AFTER)
            if failures >= ropc_settings.LOCKOUT_THRESHOLD:
                lockouts = _count(f"{self.key}:lockouts", ropc_settings.LOCKOUT_RESET_AFTER)
                period = _lock_period(lockouts)
                cache = _cache()
                # Lock first, then clear the failures, so no attempt slips between the two.
                cache.set(f"{self.key}:locked", time.time() + period, period)
                cache.delete(f"{self.key}:failures")
                signals.locked_out.send(sender=begin, realm_slug=self.realm_slug, login=self.login_key, seconds=period)

        self._settle(count_failure)


# An attempt that never settles (its process died) stops holding its place after this long.
CHECKING_TIMEOUT = 60


def begin(*, realm_slug, login_key, ip):
    """Count one password check before it runs; raise ``TooManyAttempts`` (before any hashing)
    when the identity is locked, the address throttled, or as many checks of this identity are
    running as it has failures left before a lock: so of any number of concurrent guesses, at
    most LOCKOUT_THRESHOLD ever reach a password hash."""
    cache = _cache()
    key = identity_key(realm_slug, login_key)
    try:
        # One read for what decides before hashing: the identity's lock and failures, the
        # address's failures in this window. Only failures are written back, after the check.
        ip_key = _ip_key(ip)
        state = cache.get_many([f"{key}:locked", f"{key}:failures", f"{key}:lockouts", ip_key])
        locked_until = state.get(f"{key}:locked")
        if locked_until is not None:
            raise TooManyAttempts(locked_until - time.time())
        _refuse_if_throttled(ip, state.get(ip_key, 0))
        checking = _count(f"{key}:checking", CHECKING_TIMEOUT)
        if state.get(f"{key}:failures", 0) + checking > ropc_settings.LOCKOUT_THRESHOLD:
            cache.decr(f"{key}:checking")
            # Not a failure, and no lock: they are only the attempts beyond what may run at once.
            raise TooManyAttempts(1)
    except TooManyAttempts:
        raise
    except Exception as error:  # the cache backend's own: connection refused, timeouts
        _fail_open(error)
        return Attempt(realm_slug, login_key, ip, counted=False)
    had_failures = f"{key}:failures" in state or f"{key}:lockouts" in state
    return Attempt(realm_slug, login_key, ip, counted=True, had_failures=had_failures)


@contextmanager
def client_authentication(ip):
    """Guard one client-secret check: guessing secrets counts against the address as guessing
    passwords does, and is refused with ``TooManyAttempts`` past the limit."""
    try:
        _refuse_if_throttled(ip, _cache().get(_ip_key(ip), 0))
        protected = True
    except TooManyAttempts:
        raise
    except Exception as error:
        _fail_open(error)
        protected = False
    outcome = ClientAuthentication()
    yield outcome
    if protected and not outcome.succeeded:
        try:
            _count_ip_failure(ip)
        except Exception as error:
            _fail_open(error)


class ClientAuthentication:
    succeeded = False


def unlock(realm_slug, login_key):
    key = identity_key(realm_slug, login_key)
    _cache().delete_many([f"{key}:locked", f"{key}:failures", f"{key}:lockouts"])


def lock_state(realm_slug, login_key):
    """What an operator sees: failures counted, and until when the identity is locked."""
    cache = _cache()
    key = identity_key(realm_slug, login_key)
    return {"failures": cache.get(f"{key}:failures", 0), "locked_until": cache.get(f"{key}:locked")}
