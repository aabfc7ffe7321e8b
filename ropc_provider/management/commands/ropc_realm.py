from ... import mfa, realms
from ...models import Realm
from ._base import JSONCommand


def describe_realm(realm):
    return {
        "slug": realm.slug,
        "name": realm.name,
        "source": realm.source,
        "active": realm.is_active,
        "email_login": realm.allow_email_login,
        "mfa": mfa.policy_of(realm),
    }


class Command(JSONCommand):
    help = "Manage realms: 'create' a realm, 'list' them (with account counts)."

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        create = actions.add_parser("create", help="Create a realm.")
        create.add_argument("slug")
        create.add_argument("--name")
        create.add_argument(
            "--source",
            choices=[Realm.DIRECTORY, Realm.PROJECT],
            default=Realm.DIRECTORY,
            help="directory: its own accounts (default); project: the project's users via authenticate().",
        )
        create.add_argument("--email-login", action="store_true", help="Accounts may sign in with their email.")
        create.add_argument(
            "--mfa",
            choices=[Realm.MFA_ENROLLED, Realm.MFA_REQUIRED],
            default=Realm.MFA_ENROLLED,
            help="enrolled: accounts with a second factor must use it (default); required: every account must.",
        )
        actions.add_parser("list", help="List realms.")

    def run(self, *, action, **options):
        if action == "create":
            realm = realms.create_realm(
                slug=options["slug"],
                name=options["name"],
                source=options["source"],
                allow_email_login=options["email_login"],
                mfa=options["mfa"],
            )
            return describe_realm(realm)
        return {
            "realms": [
                {**describe_realm(realm), "accounts": realm.account_count}
                for realm in realms.realms_with_account_counts()
            ]
        }
