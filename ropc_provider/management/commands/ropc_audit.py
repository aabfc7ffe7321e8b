from ... import audit
from ._base import JSONCommand, positive_number

# A century: a cutoff further back than the calendar goes would fail mid-command.
_days = positive_number("days", most=36500)


class Command(JSONCommand):
    help = (
        "The audit trail: 'purge' deletes the security events older than AUDIT_RETENTION_DAYS, "
        "and the sessions that ended before then and have no token left (run cleartokens first)."
    )

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        purge = actions.add_parser("purge", help="Delete the events and ended sessions past the retention.")
        purge.add_argument(
            "--days", type=_days, metavar="N", help="Keep N days for this run instead of AUDIT_RETENTION_DAYS."
        )

    def run(self, *, action, days=None, **options):
        return audit.purge(days=days)
