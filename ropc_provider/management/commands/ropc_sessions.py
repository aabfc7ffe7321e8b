import uuid

from ... import accounts, sessions
from ...exceptions import InvalidInput
from ...models import Session
from ._base import JSONCommand, find_account


class Command(JSONCommand):
    help = "Sessions of one account: 'list' those still working, or 'end' one by its id. Never prints a token."

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        listing = actions.add_parser("list", help="The account's sessions that still work, newest first.")
        listing.add_argument("--realm", required=True, metavar="SLUG")
        listing.add_argument("--username", required=True)
        end = actions.add_parser(
            "end", help="End one session: its refresh tokens stop working and its access tokens are revoked."
        )
        end.add_argument("session_id", metavar="ID", help="The session's id, as 'list' shows it.")

    def run(self, *, action, **options):
        if action == "list":
            return self.list(**options)
        return self.end(**options)

    def list(self, *, realm, username, **options):
        realm, user = find_account(realm, username)
        return {
            "realm": realm.slug,
            "username": accounts.identity_of(user).login_name,
            "sessions": [sessions.describe(session) for session in sessions.live_sessions(user)],
        }

    def end(self, *, session_id, **options):
        try:
            pk = uuid.UUID(session_id)
        except ValueError:
            raise InvalidInput(f"{session_id!r} is not a session id (a UUID, as 'list' shows it).") from None
        session = Session.objects.filter(pk=pk).first()
        if session is None:
            raise InvalidInput(f"No session {str(pk)!r}.")
        if not sessions.end_session(session, reason=Session.OPERATOR):
            session.refresh_from_db()
            raise InvalidInput(
                f"Session {str(pk)!r} has already ended ({session.end_reason}, {session.ended_at.isoformat()})."
            )
        return {
            "ended": str(session.pk),
            "realm": session.realm.slug,
            "username": accounts.identity_of(session.user).login_name,
            "client_id": session.application.client_id,
            "reason": Session.OPERATOR,
        }
