import json

from django.core.management.base import BaseCommand, CommandError

from ...exceptions import RopcError


class JSONCommand(BaseCommand):
    """A command that prints one JSON object on stdout; errors go to stderr with exit status 1."""

    def handle(self, *args, **options):
        try:
            result = self.run(**options)
        except RopcError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(result, sort_keys=True))

    def run(self, **options):
        raise NotImplementedError
