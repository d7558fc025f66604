"""What a newcomer meets first: `make run` installs without a page of setuptools warnings, and the README's demo
sign-ins are the users `tsunagu demo` makes, each under the name it shows."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv

import pytest
from sqlalchemy import select

from engine.models import User
from engine.settings import PROJECT_ROOT

PACKAGING = ("setup.cfg", "pyproject.toml", "README.md")
PACKAGES = ("engine", "web", "schemas", "migrations")


@pytest.mark.slow
def test_an_editable_install_prints_no_warning(tmp_path):
    """As `make run` installs (pip --quiet -e, the build backend fetched as pyproject.toml asks): nothing but
    pip's own lines about this machine's package indexes may reach the terminal."""
    project = tmp_path / "project"
    project.mkdir()
    for name in PACKAGING:
        shutil.copy(PROJECT_ROOT / name, project / name)
    for name in PACKAGES:
        shutil.copytree(PROJECT_ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    # Into an environment of its own (pip --python): installing beside this one would replace the tsunagu
    # the tests run.
    venv.create(tmp_path / "venv", with_pip=False)
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(tmp_path / "venv" / "bin" / "python"),
                             "install", "--quiet", "--no-deps", "--no-cache-dir", "-e", str(project)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    said = [line for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and not re.match(r"WARNING: Location '[^']+' is ignored", line)]
    assert said == []


def _readme_sign_ins() -> dict[str, str]:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Demo sign-ins", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", section, re.M))


def test_the_readmes_demo_sign_ins_are_the_users_the_demo_makes(cli, sessions):
    result = cli("demo")
    assert result.exit_code == 0, result.output
    with sessions() as s:
        made = {u.login: u.display_name for u in s.scalars(select(User))}
    assert _readme_sign_ins() == made
    staff = sum(1 for login in made if login.endswith("-staff"))
    assert f"部署ごとの職員 {staff} 人" in result.output and "Demo sign-ins" in result.output
