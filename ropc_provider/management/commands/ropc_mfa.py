from ... import accounts, mfa
from ._base import JSONCommand, find_account


class Command(JSONCommand):
    help = (
        "Second factors of one account: 'enroll' a TOTP authenticator (active at once), 'remove' it, or its 'status'."
    )

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        for name, text in [
            ("enroll", "Enrol a TOTP authenticator; prints its secret, URI and recovery codes once."),
            ("remove", "Remove the authenticator and recovery codes; the account's sessions end."),
            ("status", "Whether the account has an authenticator, and how many recovery codes are left."),
        ]:
            action = actions.add_parser(name, help=text)
            action.add_argument("--realm", required=True, metavar="SLUG")
            action.add_argument("--username", required=True)

    def run(self, *, action, realm, username, **options):
        realm, user = find_account(realm, username)
        shown = {"realm": realm.slug, "username": accounts.identity_of(user).login_name}
        if action == "enroll":
            enrolment = mfa.enroll(user)
            return {
                **shown,
                "secret": enrolment.secret,
                "provisioning_uri": enrolment.provisioning_uri,
                "recovery_codes": list(enrolment.recovery_codes),
            }
        if action == "remove":
            return {**shown, "removed": mfa.remove(user)}
        return {**shown, **mfa.status(user)}
