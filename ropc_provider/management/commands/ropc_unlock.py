from ... import directories, protection
from ._base import JSONCommand


class Command(JSONCommand):
    help = "Lift the lockout of one login name in one realm, and forget its failures."

    def add_arguments(self, parser):
        parser.add_argument("--realm", required=True, metavar="SLUG")
        parser.add_argument("--username", required=True)

    def run(self, *, realm, username, **options):
        realm = directories.get_realm(realm)
        login_key = directories.normalize_login(username)
        before = protection.lock_state(realm.slug, login_key)
        protection.unlock(realm.slug, login_key)
        return {"realm": realm.slug, "username": login_key, "was_locked": before["locked_until"] is not None}
