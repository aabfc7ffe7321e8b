import argparse
import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from ... import accounts, audit, realms
from ...exceptions import RopcError


class JSONCommand(BaseCommand):
    """A command that prints one JSON object on stdout; errors go to stderr with exit status 1.
    What it changes is on the audit trail as done by the command line (``actor``)."""

    def handle(self, *args, **options):
        try:
            with audit.context(actor=command_line_actor()):
                result = self.run(**options)
        except RopcError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(result, sort_keys=True))

    def run(self, **options):
        raise NotImplementedError

    def add_actions(self, parser):
        """Sub-commands (``create``, ``list``…) that also take Django's own options after them, as
        people type them: ``manage.py ropc_client list --settings=…``."""
        actions = parser.add_subparsers(dest="action", required=True)
        add_parser = actions.add_parser

        def add_action(name, **kwargs):
            action = add_parser(name, **kwargs)
            # SUPPRESS: an option not given after the sub-command keeps what was given before it.
            for flags, extra in DJANGO_OPTIONS:
                action.add_argument(*flags, default=argparse.SUPPRESS, **extra)
            return action

        actions.add_parser = add_action
        return actions


def positive_number(unit, most=None):
    """An argparse type: a whole number above zero (and at most ``most``), of ``unit`` (seconds, days)."""

    def parse(value):
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of {unit}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number of {unit}")
        if most is not None and number > most:
            raise argparse.ArgumentTypeError(f"must be at most {most} {unit}")
        return number

    return parse


def command_line_actor():
    """Who acts, for the audit trail: "command line", with the OS user when it can be told."""
    try:
        name = getpass.getuser()
    except (ImportError, KeyError, OSError):  # no login name, no passwd entry (a container's uid)
        name = ""
    return f"command line ({name})" if name else "command line"


def find_account(realm, username):
    """The realm of this slug and its account of this login name: ``(realm, user)``; an unknown
    realm or account is an error (``InvalidInput``), as the other account commands say it."""
    realm = realms.get_realm(realm)
    return realm, accounts.find_user(realm, username)


# Django's BaseCommand options (manage.py already reads --settings and --pythonpath anywhere).
DJANGO_OPTIONS = [
    (("--settings",), {"help": "A Python path to a settings module."}),
    (("--pythonpath",), {"help": "A directory to add to the Python path."}),
    (("-v", "--verbosity"), {"type": int, "choices": [0, 1, 2, 3]}),
    (("--traceback",), {"action": "store_true"}),
    (("--no-color",), {"action": "store_true"}),
    (("--force-color",), {"action": "store_true"}),
    (("--skip-checks",), {"action": "store_true"}),
]
