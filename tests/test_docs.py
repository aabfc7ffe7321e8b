"""The README is a promise: its code blocks and its settings table are checked against the code."""

import argparse
import importlib
import io
import json
import re
import shlex

from django.core.management import call_command, load_command_class

from ropc_provider.conf import DEFAULTS
from ropc_provider.management.commands._base import DJANGO_OPTIONS
from tests.factories import UserFactory
from tests.helpers import README, readme_block, readme_blocks


def test_settings_table_lists_every_setting_with_its_default():

    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `([A-Z0-9_]+)`(?: / `([A-Z0-9_]+)`)? \| (.*?) \|", line)
        if match:
            for key in filter(None, match.groups()[:2]):
                rows[key] = match.group(3)
    assert set(DEFAULTS) <= set(rows), f"not in the README's settings table: {sorted(set(DEFAULTS) - set(rows))}"
    for key, default in DEFAULTS.items():
        if isinstance(default, bool | int | float) and not isinstance(default, bool):
            shown = rows[key].split("`")[1::2]
            assert any(str(default) == value.split(" ")[0] for value in shown), (key, default, rows[key])
        elif isinstance(default, bool) or default is None:
            assert f"`{default}`" in rows[key], (key, default, rows[key])


def run_manage_py_lines(block, password="a long pass phrase 42"):
    """Each `manage.py …` line of a README block through call_command, as a shell would run it
    (a `printf … | ` feeding the password on stdin); each prints one JSON object."""

    printed = []
    for line in block.splitlines():
        command, options = line.split("  #")[0].strip(), {}
        if " | " in command:
            feeder, command = command.split(" | ")
            assert feeder.startswith("printf") and "$PASSWORD" in feeder, feeder
            options["stdin"] = io.StringIO(password + "\n")
        args = shlex.split(command)
        if args[:2] == ["python", "manage.py"]:
            args = args[1:]
        assert args[0] == "manage.py", line
        out = io.StringIO()
        call_command(*args[1:], stdout=out, **options)
        printed.append(json.loads(out.getvalue()))
    return printed


def test_the_readmes_realm_commands_run_as_written(db):
    printed = run_manage_py_lines(readme_block("manage.py ropc_realm create employees"))
    realms = printed[-1]
    assert {realm["slug"] for realm in realms["realms"]} >= {"employees", "customers"}, realms
    assert printed[4]["realms"] == ["customers", "employees"] and printed[4]["default_realm"] == "customers"


def test_the_readmes_other_clients_run_as_written(db):
    created_confidential, created_resource_server, listed = run_manage_py_lines(
        readme_block('python manage.py ropc_client create --name "Legacy backend"')
    )
    assert created_confidential["client_secret"] and created_resource_server["resource_server"] is True
    assert {client["name"] for client in listed["clients"]} == {"Legacy backend", "Orders API"}
    assert created_confidential["client_secret"] not in str(listed)  # shown once, at creation


def test_the_readmes_sign_out_code_runs_as_written(db, api, public_app):

    user = UserFactory(username="alice")
    refresh_token = api.password_grant(public_app, "alice").data["refresh_token"]
    exec(readme_block("from ropc_provider.sessions import revoke_sessions"), {"user": user})  # noqa: S102
    assert api.refresh(public_app, refresh_token).data["error"] == "invalid_grant"


def test_the_first_block_is_the_makefiles_targets():
    makefile = (README.parent / "Makefile").read_text()
    for line in readme_block("make demo").splitlines():
        assert f"\n{line.split()[1]}: " in makefile, line  # test_demo runs make demo; CI runs make test


def test_every_readme_block_is_run_by_a_test():
    """A new block without a test fails here: each block must be fetched by readme_block() in
    some test, which runs it, applies it or compares it with what a test runs."""
    sources = "".join(path.read_text() for path in README.parent.joinpath("tests").glob("test_*.py"))
    fetched = {eval(first) for first in re.findall(r'readme_block\(((?:"[^"\n]*"|\'[^\'\n]*\'))\)', sources)}  # noqa: S307
    untested = [block.splitlines()[0] for block in readme_blocks() if not any(block.startswith(f) for f in fetched)]
    assert not untested, untested


def test_the_command_line_table_lists_every_argument_of_every_command():

    django_options = {flag for flags, _ in DJANGO_OPTIONS for flag in flags} | {"-h", "--help", "--version"}
    table = {}
    for line in README.read_text().split("## Command line", 1)[1].split("\n## ", 1)[0].splitlines():
        match = re.match(r"^\| `(ropc_\w+(?: \w+)?)` \| (.*) \|$", line)
        if match:
            table[match.group(1)] = match.group(2)
    documented = set()
    commands = sorted(
        path.stem for path in (README.parent / "ropc_provider" / "management" / "commands").glob("ropc_*.py")
    )
    for command in commands:
        parser = load_command_class("ropc_provider", command).create_parser("manage.py", command)
        subs = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        for name, sub in subs[0].choices.items() if subs else [(None, parser)]:
            row = f"{command} {name}" if name else command
            assert row in table, f"no row for {row}"
            documented.add(row)
            # Both ways, name for name: every argument is in the row, and the row names no other.
            in_row = set(re.findall(r"`(--[\w-]+|[a-z]\w*)[ `]", table[row]))
            arguments = {
                action.option_strings[0] if action.option_strings else action.dest
                for action in sub._actions
                if not isinstance(action, argparse._SubParsersAction)
                and not set(action.option_strings) & django_options
            }
            options_in_row = {name for name in in_row if name.startswith("--") or name in arguments}
            assert options_in_row == arguments, (row, options_in_row ^ arguments)
    assert documented == set(table), set(table) - documented


def test_the_python_api_table_is_what_the_modules_export():

    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    for module_name, names in re.findall(r"^\| `(ropc_provider[\w.]*)` \| (.*) \|$", section, re.M):
        module = importlib.import_module(module_name)
        listed = re.findall(r"`(\w+)`", names)
        assert all(hasattr(module, name) for name in listed), (module_name, listed)
        if hasattr(module, "__all__"):
            assert set(listed) == set(module.__all__), (module_name, set(listed) ^ set(module.__all__))
