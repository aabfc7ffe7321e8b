import sys

from ... import accounts, realms
from ...exceptions import InvalidInput
from ._base import JSONCommand


class Command(JSONCommand):
    help = "Create directory accounts. The password is read from standard input, never the command line."
    # call_command(..., stdin=stream) lets code and tests hand the password over the same way.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        create = actions.add_parser("create", help="Create an account in a directory realm.")
        create.add_argument("--realm", required=True, metavar="SLUG")
        create.add_argument("username")
        create.add_argument("--email")
        create.add_argument(
            "--password-stdin",
            action="store_true",
            required=True,
            help="Read the password from the first line of standard input.",
        )

    def run(self, *, action, realm, username, email, **options):
        password = read_password(options.get("stdin") or sys.stdin)
        account = accounts.create_account(realms.get_realm(realm), username, password, email=email)
        return {"realm": account.realm.slug, "username": account.login_name, "email": email}


def read_password(stream):
    password = stream.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise InvalidInput("No password on standard input.")
    return password
