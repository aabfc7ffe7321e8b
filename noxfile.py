"""The supported-version matrix; `make test` runs it after the main suite, `make matrix` alone.

The main suite runs in .venv (Python 3.11, Django 5.2, the newest django-oauth-toolkit); these
sessions cover the rest: each end of the Django range we support, on the Python it needs, with
the oldest and the newest DOT we declare. Each runs the SQLite pass without the production
profile's servers, the browser and the wheel build (none of them depends on these versions, and
CI has a time budget).
"""

import glob
import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"  # the interpreters are this machine's (pyenv's)


def python(version):
    """python3.X from PATH, else pyenv's build (pyenv's shims answer only for its global version)."""
    builds = sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")),
        key=lambda path: [int(part) for part in path.split("/versions/")[1].split("/")[0].split(".") if part.isdigit()],
    )
    return builds[-1] if builds else shutil.which(f"python{version}") or version


OLDEST_DOT = "django-oauth-toolkit==3.4.1"  # keep equal to the floor in pyproject.toml
NEWEST_DOT = "django-oauth-toolkit>=3.4.1"


@nox.session
@nox.parametrize(
    ("python", "django", "dot"),
    [
        nox.param(python("3.11"), "Django>=5.2,<5.3", OLDEST_DOT, id="django5.2-dot-oldest"),
        nox.param(python("3.13"), "Django>=6.1,<6.2", OLDEST_DOT, id="django6.1-dot-oldest"),
        nox.param(python("3.13"), "Django>=6.1,<6.2", NEWEST_DOT, id="django6.1-dot-newest"),
    ],
)
def tests(session, django, dot):
    # -U: a reused environment would otherwise keep the DOT it was made with, never the newest.
    session.install("-U", "-e", ".[dev,example]", django, dot)
    versions = "import django, oauth2_provider as dot; print('Django', django.__version__, 'DOT', dot.__version__)"
    session.run("python", "-c", versions)
    session.run(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-m", "not production and not browser and not packaging", *session.posargs,
    )  # fmt: skip
