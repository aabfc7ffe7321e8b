"""The README is a promise: its code blocks and its settings table are checked against the code."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def readme_blocks(language=None):
    return [body.strip() for lang, body in FENCE.findall(README.read_text()) if language in (None, lang)]


def readme_block(first_line):
    """The README's code block that starts with ``first_line``."""
    found = [block for block in readme_blocks() if block.startswith(first_line)]
    assert len(found) == 1, f"{len(found)} README blocks start with {first_line!r}"
    return found[0]


def test_settings_table_lists_every_setting_with_its_default():
    from ropc_provider.conf import DEFAULTS

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
