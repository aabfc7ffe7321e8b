"""The app with a project's own AUTH_USER_MODEL (UUID primary key, email as username): a separate
pytest run, since the user model is fixed for a whole run."""

import os
import subprocess
import sys

from tests.servers import ROOT


def test_flows_with_a_custom_user_model():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_custom_user"}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/custom_user/flows.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
