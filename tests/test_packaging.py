"""What a host project installs is the wheel, not this source tree."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_app_whole_and_nothing_else(tmp_path):
    # Built from a copy without build/ and friends: setuptools packs whatever a stale build/ holds.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "var", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("ropc_provider-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {path.relative_to(ROOT).as_posix() for path in (ROOT / "ropc_provider" / "templates").rglob("*.html")}
    assert templates and templates <= names  # the admin's pages: without them, a 500
    assert "ropc_provider/py.typed" in names
    assert any(name.startswith("ropc_provider/migrations/0009_") for name in names)
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert not [name for name in names if name.startswith(("example_project/", "tests/", "benchmarks/"))]
