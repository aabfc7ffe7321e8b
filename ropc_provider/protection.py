"""Attack protection: lockout per identifier and per account, throttling per address, all counted
in Django's cache so that several app servers on one Redis share them.

- **A typed identifier** (a login name, an email address, or a name no account has) in a realm
  counts its own failures; at ``LOCKOUT_THRESHOLD`` it is locked, and only its own lock is ever
  answered with 429. So the answer to a name never depends on whether, or to which account, it
  belongs.
- **An account** counts the failures made through any of its names and locks the same way, but
  silently: while it is locked, its password is still hashed and the sign-in refused like a
  wrong password. Two names give an attacker no more guesses than one.
- **An address** (IPv4, or an IPv6 prefix) counts its attempts over a sliding window of
  ``IP_FAILURE_WINDOW``; a success takes its attempt back.
- **A known address** (one the account signed in from within ``KNOWN_ADDRESS_LIFETIME``) counts
  the account's failures apart, so an attacker elsewhere cannot lock a user out of the device
  they use.

Every password check is announced before it runs (an atomic increment) and settled after, so of
any number of concurrent guesses at most the threshold reach a password hash, per identifier and
per address; the others are refused before hashing.
"""

import hashlib
import ipaddress
import logging
import time
from contextlib import contextmanager

from django.core.cache import caches

from . import audit, signals
from .conf import ropc_settings
from .exceptions import ProtectionUnavailable, TooManyAttempts
from .models import SecurityEvent

log = logging.getLogger("ropc_provider")


def _cache():
    return caches[ropc_settings.PROTECTION_CACHE]


def _digest(*parts):
    # Keys of fixed length and alphabet, whatever the login name; no login name or address in the cache.
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _count(key, timeout):
    """Atomically add one to a counter that expires ``timeout`` after its first count."""
    cache = _cache()
    try:
        return cache.incr(key)  # the usual case: the counter exists
    except ValueError:
        if cache.add(key, 1, timeout):
            return 1
        return cache.incr(key)  # another request created it meanwhile


def _take_back(key):
    try:
        _cache().decr(key)
    except ValueError:
        pass  # expired meanwhile: nothing to take back


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


_warned_untrusted_forwarding = False


def _warn_untrusted_forwarding_once():
    # Once per process: a proxy in front that nobody told us about makes every user one address,
    # and lets one attacker lock everybody out.
    global _warned_untrusted_forwarding
    if not _warned_untrusted_forwarding:
        _warned_untrusted_forwarding = True
        log.warning(
            "Requests arrive with X-Forwarded-For, but no proxy is trusted: attack protection counts "
            "every client behind the proxy as one address. Set ROPC_PROVIDER['TRUSTED_PROXY_COUNT'] "
            "or ['CLIENT_IP_HEADER'] if a proxy of yours sets it."
        )


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
    elif "HTTP_X_FORWARDED_FOR" in meta:
        _warn_untrusted_forwarding_once()
    if may_forward_user_ip:
        header = "HTTP_" + ropc_settings.FORWARDED_USER_IP_HEADER.upper().replace("-", "_")
        ip = _valid_ip(meta.get(header, "")) or ip
    return ip


def _counted_address(ip):
    """One IPv4 address, or one IPv6 prefix of ``IPV6_PREFIX_LENGTH`` bits (what one subscriber
    gets): an attacker cycling through the addresses of their own prefix is still one attacker.
    IPv4-mapped IPv6 is its IPv4."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{ropc_settings.IPV6_PREFIX_LENGTH}", strict=False))
    return str(address)


# -- addresses: a sliding window ------------------------------------------------------------------

# The window is counted in this many slices. The slices read are those that overlap the last
# IP_FAILURE_WINDOW seconds, so no stretch of that length ever holds more than the limit (a fixed
# window let twice the limit through across its boundary).
SLICES = 10


class _AddressWindow:
    def __init__(self, address, now):
        window = ropc_settings.IP_FAILURE_WINDOW
        self.slice_seconds = window / SLICES
        self.current = int(now // self.slice_seconds)
        self.now = now
        prefix = f"ropc:ip:{_digest(address)}"
        self.keys = [f"{prefix}:{index}" for index in range(self.current - SLICES, self.current + 1)]

    @property
    def current_key(self):
        return self.keys[-1]

    def earlier(self, state):
        return sum(state.get(key, 0) for key in self.keys[:-1])

    def retry_after(self, state, current_count):
        """Seconds until enough slices have left the window for one more attempt."""
        counts = [state.get(key, 0) for key in self.keys[:-1]] + [current_count]
        total = sum(counts)
        for age, count in enumerate(counts):
            total -= count
            if total < ropc_settings.IP_FAILURE_LIMIT:
                # Slice ``age`` stops being read once the current slice index passes it by SLICES.
                return (self.current + age + 1) * self.slice_seconds - self.now
        return ropc_settings.IP_FAILURE_WINDOW

    def reserve(self, state, ip):
        """Count an attempt before it runs; refuse it when the window is full (failures and
        attempts in flight together), so overlapping guesses cannot overshoot the limit."""
        timeout = ropc_settings.IP_FAILURE_WINDOW + 2 * self.slice_seconds
        count = _count(self.current_key, timeout)
        if self.earlier(state) + count > ropc_settings.IP_FAILURE_LIMIT:
            _take_back(self.current_key)
            signals.throttled.send(sender=begin, ip=ip)
            if worth_recording("address", ip=ip):
                audit.record(SecurityEvent.ADDRESS_THROTTLED, ip=ip)
            raise TooManyAttempts(self.retry_after(state, count - 1), kind="throttled")


# -- identities -----------------------------------------------------------------------------------


class _Counter:
    """The failures, lock and checks in flight of one identifier or account (at one address)."""

    def __init__(self, *parts):
        key = "ropc:id:" + _digest(*parts)
        self.failures, self.lockouts = f"{key}:failures", f"{key}:lockouts"
        self.locked, self.checking = f"{key}:locked", f"{key}:checking"

    def reads(self):
        return [self.locked, self.failures, self.lockouts]


def _typed(realm_slug, login_key, place=None):
    return _Counter(realm_slug, login_key, *([place] if place else []))


def _account(realm_slug, account_key, place=None):
    return _Counter("account", realm_slug, account_key, *([place] if place else []))


def _known_key(realm_slug, subject):
    return "ropc:known:" + _digest(realm_slug, subject)


# An attempt that never settles (its process died) stops holding its place after this long.
CHECKING_TIMEOUT = 60
# How many recent addresses of one account are remembered as known.
KNOWN_ADDRESSES = 10


def _lock_period(lockouts):
    base, ceiling = ropc_settings.LOCKOUT_SECONDS, ropc_settings.LOCKOUT_MAX_SECONDS
    return min(ceiling, base * 2 ** max(0, lockouts - 1))


def _count_failure(counter):
    """Count a failure; returns the period of the lock it caused, else None."""
    failures = _count(counter.failures, ropc_settings.LOCKOUT_RESET_AFTER)
    if failures < ropc_settings.LOCKOUT_THRESHOLD:
        return None
    lockouts = _count(counter.lockouts, ropc_settings.LOCKOUT_RESET_AFTER)
    period = _lock_period(lockouts)
    cache = _cache()
    # Lock first, then clear the failures, so no attempt slips between the two.
    cache.set(counter.locked, time.time() + period, period)
    cache.delete(counter.failures)
    return period


class Attempt:
    """One password check, counted before it ran; settle it with ``succeeded()`` or ``failed()``
    once the sign-in stands or falls.

    ``account_locked``: the account is locked, though the name typed is not. The password is
    checked all the same (the answer must cost what a wrong password costs) and the sign-in
    refused as a wrong one."""

    counted = True

    def __init__(self, *, realm_slug, login_key, account_key, place, ip, typed, account, window_key, known, state):
        self.realm_slug, self.login_key, self.account_key = realm_slug, login_key, account_key
        self.place, self.ip, self.known = place, ip, known
        self.typed, self.account, self.window_key = typed, account, window_key
        self._state = state
        self.account_locked = account is not None and state.get(account.locked) is not None

    def _settle(self, outcome):
        try:
            _take_back(self.typed.checking)
            outcome()
        except Exception as error:
            _fail_open(error)

    def succeeded(self):
        def forget():
            cache = _cache()
            _take_back(self.window_key)  # a success is no failure of the address
            counters = [counter for counter in (self.typed, self.account) if counter is not None]
            stale = [key for counter in counters for key in (counter.failures, counter.lockouts) if key in self._state]
            if stale:
                cache.delete_many(stale)
            if not self.known and ropc_settings.KNOWN_ADDRESS_LIFETIME:
                known_key = _known_key(self.realm_slug, self.account_key or self.login_key)
                places = [self.place, *self._state.get(known_key, ())]
                cache.set(known_key, places[:KNOWN_ADDRESSES], ropc_settings.KNOWN_ADDRESS_LIFETIME)

        self._settle(forget)

    def _release(self):
        _take_back(self.window_key)

    def second_factor_due(self):
        """The password was right, and the sign-in waits for a second factor: the check is over, and
        no failure of the address, but the identity's failures stand until the factor is verified
        (its codes count on them), and the address is not yet known to the account."""
        self._settle(self._release)

    def interrupted(self):
        """The check could not finish for a fault of ours (the database gave way): no failure of the
        identity or the address, for a right password must not step towards a lock."""
        self._settle(self._release)

    def _announce_lock(self, login, seconds):
        audit.record(
            SecurityEvent.LOCKOUT_STARTED, realm=self.realm_slug, login_name=login, reason=f"{seconds} s", ip=self.ip
        )
        signals.locked_out.send(sender=begin, realm_slug=self.realm_slug, login=login, seconds=seconds)

    def failed(self):
        def count():
            typed_lock = _count_failure(self.typed)
            account_lock = _count_failure(self.account) if self.account is not None else None
            if typed_lock:
                self._announce_lock(self.login_key, typed_lock)
            # The account's lock is news unless it is the lock of the same name, just announced.
            if account_lock and not (typed_lock and self.login_key == self.account_key):
                self._announce_lock(self.account_key, account_lock)

        self._settle(count)


class _Uncounted:
    """The cache was down (fail-open): nothing to settle."""

    counted = False
    account_locked = False

    def succeeded(self):
        pass

    def failed(self):
        pass

    def second_factor_due(self):
        pass

    def interrupted(self):
        pass


def begin(*, realm_slug, login_key, ip, account_key=None):
    """Count one password check before it runs.

    ``login_key`` is the identifier as typed (normalised as the realm compares it); ``account_key``
    the account it names, when one was found. Raises ``TooManyAttempts`` (before any hashing) when
    the typed identifier is locked, the address has used up its window, or as many checks of this
    identifier are running as it has failures left before a lock: so of any number of concurrent
    guesses, at most LOCKOUT_THRESHOLD reach a password hash.
    """
    cache = _cache()
    now = time.time()
    address = _counted_address(ip)
    place = _digest(address)
    known_key = _known_key(realm_slug, account_key or login_key)
    typed_here, typed_anywhere = _typed(realm_slug, login_key, place), _typed(realm_slug, login_key)
    account_here = _account(realm_slug, account_key, place) if account_key else None
    account_anywhere = _account(realm_slug, account_key) if account_key else None
    window = _AddressWindow(address, now)
    try:
        # One read decides, before hashing: whether this address is known to the account, the
        # locks and failures that then apply, and the address's window. Whether the address is
        # known decides which counters apply, so both sets are read at once.
        reads = [known_key, *typed_here.reads(), *typed_anywhere.reads(), *window.keys[:-1]]
        if account_here is not None:
            reads += [*account_here.reads(), *account_anywhere.reads()]
        state = cache.get_many(reads)
        known = place in (state.get(known_key) or ())
        typed = typed_here if known else typed_anywhere
        account = (account_here if known else account_anywhere) if account_here is not None else None
        locked_until = state.get(typed.locked)
        if locked_until is not None:
            raise TooManyAttempts(locked_until - now)
        window.reserve(state, ip)
        checking = _count(typed.checking, CHECKING_TIMEOUT)
        if state.get(typed.failures, 0) + checking > ropc_settings.LOCKOUT_THRESHOLD:
            _take_back(typed.checking)
            _take_back(window.current_key)
            # Not a failure, and no lock: they are only the attempts beyond what may run at once.
            raise TooManyAttempts(1, kind="too_many_at_once")
    except TooManyAttempts:
        raise
    except Exception as error:  # the cache backend's own: connection refused, timeouts
        _fail_open(error)
        return _Uncounted()
    return Attempt(
        realm_slug=realm_slug,
        login_key=login_key,
        account_key=account_key,
        place=place,
        ip=ip,
        typed=typed,
        account=account,
        window_key=window.current_key,
        known=known,
        state=state,
    )


# Seconds during which one refusal of a kind, for one subject, is worth an audit record.
RECORD_REFUSALS_EVERY = 60


def worth_recording(kind, *subject, ip=None):
    """Whether a refusal (locked, throttled) of this subject is the first in RECORD_REFUSALS_EVERY
    seconds: the rest cost no hash, and must not each cost an insert either. ``ip`` joins the
    subject as attempts are counted, so the addresses of one IPv6 prefix are one subject."""
    if ip is not None:
        subject = (*subject, _counted_address(ip))
    try:
        return _cache().add(f"ropc:noted:{kind}:{_digest(*map(str, subject))}", 1, RECORD_REFUSALS_EVERY)
    except Exception:  # the cache is down: better a record too many than none
        return True


@contextmanager
def client_authentication(ip):
    """Guard one client-secret check: guessing secrets counts against the address as guessing
    passwords does, and is refused with ``TooManyAttempts`` past the limit."""
    window = _AddressWindow(_counted_address(ip), time.time())
    try:
        window.reserve(_cache().get_many(window.keys[:-1]), ip)
        protected = True
    except TooManyAttempts:
        raise
    except Exception as error:
        _fail_open(error)
        protected = False
    outcome = ClientAuthentication()
    try:
        yield outcome
    finally:
        if protected and outcome.succeeded:
            try:
                _take_back(window.current_key)
            except Exception as error:
                _fail_open(error)


class ClientAuthentication:
    succeeded = False


# -- operators ------------------------------------------------------------------------------------


def _all_counters(realm_slug, names, account_key):
    """The counters of these names and this account, anywhere and at each known address."""
    cache = _cache()
    subjects = [account_key] if account_key else list(names)
    places = []
    for subject in subjects:
        places += cache.get(_known_key(realm_slug, subject)) or []
    counters = []
    for place in [None, *dict.fromkeys(places)]:
        counters += [_typed(realm_slug, name, place) for name in names]
        if account_key:
            counters.append(_account(realm_slug, account_key, place))
    return counters


def lock_state(realm_slug, names, *, account_key=None):
    """What an operator sees of an account (or of names no account has): the most failures
    counted, and until when the latest lock lasts (None: not locked)."""
    counters = _all_counters(realm_slug, names, account_key)
    state = _cache().get_many([key for counter in counters for key in (counter.failures, counter.locked)])
    locks = [state[counter.locked] for counter in counters if counter.locked in state]
    return {
        "failures": max([state.get(counter.failures, 0) for counter in counters], default=0),
        "locked_until": max(locks, default=None),
    }


def unlock(realm_slug, names, *, account_key=None):
    """Lift every lock of these names and this account, wherever counted, and forget their failures."""
    keys = []
    for counter in _all_counters(realm_slug, names, account_key):
        keys += [counter.locked, counter.failures, counter.lockouts]
    _cache().delete_many(keys)
