"""The first five minutes (issue 17): `make` says which Python it needs before pip fails, the design
notes the README points to are in the repository, and there is a CHANGELOG for the version."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check_python(python: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "--no-print-directory", "check-python", f"PYTHON={python}",
                           f"VENV={tmp_path / 'no-venv'}"], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_make_checks_the_python_version(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.12\n")
    fake.chmod(0o755)
    out = _check_python(str(fake), tmp_path)
    assert out.returncode != 0
    assert "needs Python 3.11" in out.stderr and "is Python 3.12" in out.stderr and "make PYTHON=python3.11" in out.stderr
    out = _check_python(str(tmp_path / "missing-python"), tmp_path)
    assert out.returncode != 0 and "no Python at" in out.stderr
    if sys.version_info[:2] == (3, 11):
        assert _check_python(sys.executable, tmp_path).returncode == 0
    need = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert need == ">=3.11,<3.12"  # the Makefile's PYTHON_NEEDED says the same


def test_readme_links_stay_inside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text
    for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not link.startswith(("http://", "https://")):
            assert (ROOT / link).exists(), link
    assert (ROOT / "docs" / "DESIGN.md").exists() and (ROOT / "docs" / "spec" / "ccip_reference.md").exists()


def test_changelog_has_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^## \[?{re.escape(version)}\]?", (ROOT / "CHANGELOG.md").read_text(), re.M)
