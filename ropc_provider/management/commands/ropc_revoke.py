from ... import accounts, sessions
from ...models import SessionCutoff
from ._base import JSONCommand, find_account


class Command(JSONCommand):
    help = "End every session of one account now: its refresh tokens stop working and its access tokens are revoked."

    def add_arguments(self, parser):
        parser.add_argument("--realm", required=True, metavar="SLUG")
        parser.add_argument("--username", required=True)

    def run(self, *, realm, username, **options):
        realm, user = find_account(realm, username)
        cutoff = sessions.revoke_sessions(user, reason=SessionCutoff.OPERATOR)
        return {
            "realm": realm.slug,
            "username": accounts.identity_of(user).login_name,
            "refresh_tokens_valid_from": cutoff.refresh_tokens_valid_from.isoformat(),
            "reason": cutoff.reason,
        }
