"""The audit trail: what happened to sign-ins, sessions, clients and realms, kept as
``SecurityEvent`` rows and logged as one JSON object per event on the ``ropc_provider.audit``
logger, for a SIEM.

Services record through ``record()``; what they do not know (the caller's address and user agent,
the client, the operator acting) comes from the ``context()`` the endpoint, admin or command set.
An event never holds a password, secret, token, code or ``auth_session``: nothing here takes one.

Where an event happens inside a grant's transaction it is written in that transaction, so it
commits with what it records. A failure is recorded after the sign-in's transaction is over, in
its own statement: a sign-in whose transaction rolled back is still on record.
"""

import contextvars
import ipaddress
import json
import logging
from contextlib import contextmanager
from datetime import timedelta

from django.db import router, transaction
from django.db.models import CharField
from django.utils import timezone

from . import statements
from .conf import ropc_settings
from .models import SecurityEvent

log = logging.getLogger("ropc_provider.audit")  # the events, one JSON object each, and nothing else
problems = logging.getLogger("ropc_provider")

# The API host projects may call (README: "Python API"); the rest may change.
__all__ = ["context", "purge", "record"]

_context = contextvars.ContextVar("ropc_provider_audit", default=None)

# The text columns, and how long each may be: what is longer is cut, never refused.
_LIMITS = {
    field.name: field.max_length
    for field in SecurityEvent._meta.concrete_fields
    if isinstance(field, CharField) and field.name != "type"
}


@contextmanager
def context(**known):
    """What the events recorded inside this block share: ``ip``, ``user_agent``, ``client`` (an
    Application), ``actor`` (the operator). Nested blocks add to the outer one's."""
    values = {**(_context.get() or {}), **{name: value for name, value in known.items() if value is not None}}
    token = _context.set(values)
    try:
        yield values
    finally:
        _context.reset(token)


def note(**known):
    """Add to the current context what became known inside it (the client, the address as attack
    protection counts it)."""
    values = _context.get()
    if values is not None:
        values.update({name: value for name, value in known.items() if value is not None})


def stored_address(ip):
    """``ip`` if it is an address, else None: attack protection counts a server that knows no peer
    address (a unix socket) as "unknown", which has no place in an address column."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _recorded(event_type):
    return event_type != SecurityEvent.REFRESH_SUCCEEDED or ropc_settings.AUDIT_REFRESH_SUCCEEDED


def _event(event_type, *, user=None, realm=None, client=None, **fields):
    known = _context.get() or {}
    client = client or known.get("client")
    if user is not None:
        fields.setdefault("user_id", user.pk)
    if client is not None:
        fields.setdefault("client_id", client.client_id)
        fields.setdefault("client_name", client.name)
    if realm is not None:
        fields.setdefault("realm", getattr(realm, "slug", realm))
    for name in ("ip", "user_agent", "actor"):
        if fields.get(name) is None and known.get(name) is not None:
            fields[name] = known[name]
    fields["ip_address"] = stored_address(fields.pop("ip", None))
    values = {
        name: "" if value is None else str(value)[: _LIMITS[name]] for name, value in fields.items() if name in _LIMITS
    }
    return SecurityEvent(
        time=timezone.now(),
        type=event_type,
        ip_address=fields["ip_address"],
        session_id=fields.get("session_id"),
        **values,
    )


def _log(event):
    if not log.isEnabledFor(logging.INFO):
        return  # nobody listens: spare the grant the JSON
    payload = {
        "time": event.time.isoformat(),
        "type": event.type,
        **{name: getattr(event, name) for name in _LIMITS if getattr(event, name)},
        "ip_address": event.ip_address,
        "session_id": str(event.session_id) if event.session_id else None,
    }
    log.info(json.dumps(payload, sort_keys=True), extra={"security_event": payload})


def record(event_type, **fields):
    """Record one event: ``user``, ``realm`` (a Realm or its slug), ``client``, ``login_name``,
    ``reason``, ``session_id``, ``ip``, ``user_agent``, ``actor``; the context fills what is left
    out. Returns the event, or None for one not recorded (``AUDIT_REFRESH_SUCCEEDED``)."""
    if not _recorded(event_type):
        return None
    event = _event(event_type, **fields)
    if transaction.get_connection(router.db_for_write(SecurityEvent)).needs_rollback:
        # Inside a caller's transaction that is already lost: a row would go down with it, and the
        # attempt would hide the error that lost it. The log keeps the event.
        problems.warning("Security event not stored, its transaction is rolling back: %s", event_type)
    else:
        statements.insert(event)  # on every grant: a statement written once, not compiled each time
    _log(event)
    return event


def record_many(event_type, many):
    """Record several events of one type in one statement (a cutoff ending many sessions)."""
    events = [_event(event_type, **fields) for fields in many]
    SecurityEvent.objects.bulk_create(events)
    for event in events:
        _log(event)
    return events


def purge(*, days=None, now=None):
    """Delete the events older than ``days`` (``AUDIT_RETENTION_DAYS``), and the sessions that ended
    before then and have no token left (``sessions.purge``). Returns ``{"events": n, "sessions": n}``."""
    from . import sessions  # sessions records through this module

    before = (now or timezone.now()) - timedelta(days=days or ropc_settings.AUDIT_RETENTION_DAYS)
    with transaction.atomic():
        events, _ = SecurityEvent.objects.filter(time__lt=before).delete()
        ended = sessions.purge(before)
    return {"events": events, "sessions": ended}
