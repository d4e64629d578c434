"""scripts/bootstrap's steps (scripts/lib/bootstrap.sh), each run by bash as the script runs
it: a .venv left half made by a Python without its venv support is made again, a user with
neither root nor sudo is told the exact apt command, and each command gets only the system
packages it needs."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

LIBRARY = REPO_ROOT / "scripts" / "lib" / "bootstrap.sh"
BASH = shutil.which("bash") or "/bin/bash"
TIMEOUT_SECONDS = 120
PYTHON_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def bootstrap_step(
    command: str, *, cwd: Path | str, env: dict[str, str] | None = None, as_user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` run by bash after the library, fed on stdin (so another user needs no
    access to the checkout)."""
    prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", as_user, "--"] if as_user else []
    return subprocess.run(
        [*prefix, BASH, "-s"],
        input=LIBRARY.read_text(encoding="utf-8") + "\nset -e\n" + command + "\n",
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else os.environ.copy(),
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def python_without_venv_support(directory: Path) -> Path:
    """This Python as Debian ships it without pythonX.Y-venv: no ensurepip module."""
    shadow = directory / "without-ensurepip"
    shadow.mkdir()
    (shadow / "ensurepip.py").write_text("raise ImportError('ensurepip is in the pythonX.Y-venv package')\n")
    wrapper = directory / "python-without-venv"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={shadow} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_a_venv_left_half_made_without_venv_support_is_made_again(tmp_path: Path) -> None:
    # What Debian's `python3 -m venv` leaves behind without pythonX.Y-venv: a venv, no pip.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / ".venv"], check=True)
    assert bootstrap_step("venv_works .venv", cwd=tmp_path).returncode == 1

    # The venv support installed, the next run mends it instead of failing for good.
    again = bootstrap_step(f"ensure_venv {sys.executable}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "recreating it" in again.stderr
    pip = subprocess.run(
        [tmp_path / ".venv" / "bin" / "python", "-m", "pip", "--version"], capture_output=True, check=False
    )
    assert pip.returncode == 0

    # A working .venv is left as it is, silently.
    (tmp_path / ".venv" / "kept").touch()
    third = bootstrap_step(f"ensure_venv {sys.executable}", cwd=tmp_path)
    assert (third.returncode, third.stderr) == (0, "")
    assert (tmp_path / ".venv" / "kept").exists()


def test_a_venv_whose_interpreter_is_gone_does_not_count_as_working(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "a-python-since-uninstalled")

    assert bootstrap_step("venv_works .venv", cwd=tmp_path).returncode == 1
    assert bootstrap_step(f"venv_works {sys.prefix}", cwd=tmp_path).returncode == 0


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may read (pytest's own are its owner's only)."""
    directory = Path(tempfile.mkdtemp(prefix="hookbus-bootstrap-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def _only(directory: Path, *tools: str) -> str:
    """A PATH with nothing but ``tools`` on it (and bash's builtins)."""
    directory.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (directory / tool).symlink_to(found)
    return str(directory)


def test_without_root_or_sudo_the_exact_apt_command_is_printed(public_dir: Path) -> None:
    path = _only(public_dir, "id")
    # As root the test takes an unprivileged user's place; as anyone else it is one.
    as_user = "nobody" if os.getuid() == 0 else None

    result = bootstrap_step(
        "apt_install default-jre-headless maven", cwd="/", env={"PATH": path, "HOME": "/"}, as_user=as_user
    )

    assert result.returncode == 1
    assert "is not root and has no sudo" in result.stderr
    assert "apt-get update && apt-get install -y default-jre-headless maven" in result.stderr


def test_a_user_sudo_refuses_is_printed_the_exact_apt_command_too(public_dir: Path) -> None:
    # A sudo that refuses, as Debian's does for a user outside the sudoers file (or one it
    # cannot ask for a password: no terminal).
    path = _only(public_dir, "id")
    refusing = public_dir / "sudo"
    refusing.write_text("#!/bin/sh\necho 'Sorry, user may not run sudo.' >&2\nexit 1\n")
    refusing.chmod(0o755)
    as_user = "nobody" if os.getuid() == 0 else None

    result = bootstrap_step("apt_install maven", cwd="/", env={"PATH": path, "HOME": "/"}, as_user=as_user)

    assert result.returncode == 1
    assert "sudo does not let this user run it" in result.stderr
    assert "apt-get update && apt-get install -y maven" in result.stderr


def _missing(tmp_path: Path, profile: str, python: Path | str) -> list[str]:
    environment = {"PATH": _only(tmp_path / "bin")}
    result = bootstrap_step(f"missing_system_packages {profile} '{python}'", cwd=tmp_path, env=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_each_command_gets_only_the_system_packages_it_needs(tmp_path: Path) -> None:
    # Nothing but Python here: no java, no mvn, no initdb, no chromium on the PATH.
    postgres_installed = bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))

    assert _missing(tmp_path, "run", sys.executable) == ["default-jre-headless", "maven"]
    assert _missing(tmp_path, "test", sys.executable) == [
        "default-jre-headless",
        "maven",
        *([] if postgres_installed else ["postgresql"]),
        "chromium",
        "chromium-driver",
    ]
    assert _missing(tmp_path, "run", python_without_venv_support(tmp_path)) == [
        f"python{PYTHON_VERSION}-venv",
        "default-jre-headless",
        "maven",
    ]
    assert _missing(tmp_path, "run", "")[:2] == ["python3", "python3-venv"]
