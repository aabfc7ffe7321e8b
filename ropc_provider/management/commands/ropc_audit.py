import argparse

from ... import audit
from ._base import JSONCommand


def _days(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of days")
    return number


class Command(JSONCommand):
    help = (
        "The audit trail: 'purge' deletes the security events older than AUDIT_RETENTION_DAYS, "
        "and the sessions that ended before then."
    )

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        purge = actions.add_parser("purge", help="Delete the events and ended sessions past the retention.")
        purge.add_argument(
            "--days", type=_days, metavar="N", help="Keep N days for this run instead of AUDIT_RETENTION_DAYS."
        )

    def run(self, *, action, days=None, **options):
        return audit.purge(days=days)
