from ... import accounts, realms
from ._base import JSONCommand


class Command(JSONCommand):
    help = "Lift the locks of one account (by login name or email), or of one login name, in a realm."

    def add_arguments(self, parser):
        parser.add_argument("--realm", required=True, metavar="SLUG")
        parser.add_argument("--username", required=True)

    def run(self, *, realm, username, **options):
        realm = realms.get_realm(realm)
        was_locked = accounts.unlock(realm, username)
        shown = accounts.normalize_login(username) if realm.is_directory else username
        return {"realm": realm.slug, "username": shown, "was_locked": was_locked}
