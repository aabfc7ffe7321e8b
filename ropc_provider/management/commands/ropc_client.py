from ... import clients
from ._base import JSONCommand, positive_number

_positive_int = positive_number("seconds")


class Command(JSONCommand):
    help = (
        "Register password-grant clients. 'create' prints client_id and, for a confidential client, "
        "client_secret: its only showing. 'list' prints the clients, never a secret."
    )

    def add_arguments(self, parser):
        actions = self.add_actions(parser)
        create = actions.add_parser("create", help="Register a client.")
        create.add_argument("--name", required=True)
        kind = create.add_mutually_exclusive_group(required=True)
        kind.add_argument("--public", action="store_true", help="A native or browser app: no secret.")
        kind.add_argument("--confidential", action="store_true", help="A server-side app: gets a secret.")
        kind.add_argument(
            "--resource-server",
            action="store_true",
            help="An API that introspects tokens (RFC 7662): confidential, never signs users in.",
        )
        create.add_argument("--scope", action="append", default=[], metavar="SCOPE", help="An allowed scope (repeat).")
        create.add_argument(
            "--realm",
            action="append",
            default=[],
            metavar="SLUG",
            help="A realm the client may sign users in to (repeat). None: the project's own users.",
        )
        create.add_argument("--default-realm", metavar="SLUG", help="The realm used when a request names none.")
        create.add_argument("--no-refresh-tokens", action="store_true")
        create.add_argument(
            "--refresh-grace-period",
            type=_positive_int,
            metavar="SECONDS",
            help="Let a client that lost the answer to a refresh present the rotated token again, once.",
        )
        create.add_argument(
            "--may-forward-user-ip",
            action="store_true",
            help="Confidential only: the client names its end user's IP in the X-End-User-IP header.",
        )
        create.add_argument("--access-token-lifetime", type=_positive_int, metavar="SECONDS")
        create.add_argument("--refresh-token-lifetime", type=_positive_int, metavar="SECONDS")
        create.add_argument(
            "--session-max-lifetime",
            type=_positive_int,
            metavar="SECONDS",
            help="No refresh extends a sign-in past this (default: SESSION_MAX_LIFETIME).",
        )
        create.add_argument(
            "--session-idle-timeout",
            type=_positive_int,
            metavar="SECONDS",
            help="A refresh after this long without one is refused (default: SESSION_IDLE_TIMEOUT).",
        )
        actions.add_parser("list", help="List the clients registered with a policy.")

    def run(self, *, action, **options):
        if action == "create":
            return self.create(**options)
        return self.list()

    def create(self, *, name, confidential, resource_server, scope, no_refresh_tokens, **options):
        registered = clients.register_client(
            name=name,
            confidential=confidential or resource_server,
            resource_server=resource_server,
            scopes=scope,
            issue_refresh_tokens=not no_refresh_tokens,
            access_token_lifetime=options["access_token_lifetime"],
            refresh_token_lifetime=options["refresh_token_lifetime"],
            session_max_lifetime=options["session_max_lifetime"],
            session_idle_timeout=options["session_idle_timeout"],
            realms=options["realm"],
            may_forward_user_ip=options["may_forward_user_ip"],
            refresh_grace_seconds=options["refresh_grace_period"] or 0,
            default_realm=options["default_realm"],
        )
        result = clients.describe_client(registered.application)
        if registered.client_secret:
            result["client_secret"] = registered.client_secret
        return result

    def list(self):
        return {"clients": [clients.describe_client(app) for app in clients.registered_clients()]}
