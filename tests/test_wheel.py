"""hookbus as a user installs it: the wheel, built from the checkout and installed into a
clean virtualenv outside it, holds its package data and entry points, answers ``--help``
for every command, and runs ``hookbus dev`` started from another directory until one
``hookbus send`` (from yet another) is accepted."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from configparser import ConfigParser
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookbus.config import KafkaConfig
from hookbus.provider import providers
from tests.support import REPO_ROOT, free_port

# What the wheel is built from, as the Dockerfile copies it.
SOURCES = ("pyproject.toml", "README.md", "hookbus", "providers", "ingest", "normalizer", "sinks", "schemas", "tools")
ENTRY_POINT_GROUPS = ("console_scripts", "hookbus.commands", "hookbus.providers", "hookbus.sinks")
COMMAND_TIMEOUT_SECONDS = 120
DEV_READY_SECONDS = 120.0
DEV_STOP_SECONDS = 60.0


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path
    """A directory outside the checkout, where the commands run."""

    @property
    def hookbus(self) -> str:
        return str(self.venv / "bin" / "hookbus")

    def environment(self) -> dict[str, str]:
        # Nothing of the checkout or of the test's own virtualenv leaks in.
        environment = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        return {**environment, "HOME": str(self.home), "XDG_STATE_HOME": str(self.home / "state")}

    def run(self, *arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.hookbus, *arguments],
            capture_output=True,
            text=True,
            cwd=cwd or self.home,
            env=self.environment(),
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )


def _checked(command: list[str | Path]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    # The build backend is the test environment's own: no download, and no build/ in the checkout.
    _checked(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "dist", source]
    )
    [wheel] = (root / "dist").glob("hookbus-*.whl")
    venv = root / "venv"
    # No pip of its own: this environment's installs into it (quicker than ensurepip).
    _checked([sys.executable, "-m", "venv", "--without-pip", venv])
    # The pinned versions, which pip's cache mostly already holds.
    _checked(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv / "bin" / "python",
            "install",
            "-q",
            "--constraint",
            REPO_ROOT / "constraints.txt",
            f"{wheel}[fast]",
        ]
    )
    home = root / "home"
    home.mkdir()
    return Installed(wheel, venv, home)


def test_the_wheel_holds_the_package_data(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    expected = {
        str(path.relative_to(REPO_ROOT))
        for pattern in (
            "schemas/**/*.json",
            "providers/*/golden.json",
            "sinks/migrations/*.py",
            "tools/examples/*.yaml",
            "tools/console/static/**/*.*",
        )
        for path in REPO_ROOT.glob(pattern)
    }
    assert "schemas/cloudevent.json" in expected
    assert "tools/console/static/index.html" in expected
    assert {f"schemas/data/{name}.json" for name in providers() if name != "gitea"} <= expected
    assert expected <= names, sorted(expected - names)
    assert {"hookbus/py.typed", "sinks/py.typed"} <= names


def _entry_points(installed: Installed) -> ConfigParser:
    with zipfile.ZipFile(installed.wheel) as wheel:
        [name] = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(name).decode("utf-8")
    parser = ConfigParser()
    parser.read_string(text)
    return parser


def test_the_wheel_registers_its_commands_providers_and_sinks(installed: Installed) -> None:
    entry_points = _entry_points(installed)

    assert set(ENTRY_POINT_GROUPS) <= set(entry_points.sections())
    assert dict(entry_points["console_scripts"]) == {"hookbus": "hookbus.cli:main"}
    assert {"postgres", "sqlite", "http", "kafka"} <= set(entry_points["hookbus.sinks"])
    # The installed package finds every built-in provider through its entry point.
    listed = subprocess.run(
        [installed.venv / "bin" / "python", "-c", "from hookbus.provider import providers; print(*providers())"],
        capture_output=True,
        text=True,
        cwd=installed.home,
        env=installed.environment(),
        check=True,
    )
    assert set(listed.stdout.split()) == {name for name in providers() if name != "gitea"}


def test_every_command_answers_help(installed: Installed) -> None:
    commands = list(_entry_points(installed)["hookbus.commands"])
    top = installed.run("--help")
    assert top.returncode == 0, top.stderr
    # Started together: each is a process importing hookbus, and they do not depend on each other.
    helps = {
        command: subprocess.Popen(
            [installed.hookbus, command, "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=installed.home,
            env=installed.environment(),
        )
        for command in commands
    }
    for command, process in helps.items():
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
        assert command in top.stdout
        assert process.returncode == 0, f"hookbus {command} --help:\n{stderr}"
        assert stdout.startswith(f"usage: hookbus {command}"), stdout


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], errors: Path) -> None:
    deadline = time.monotonic() + DEV_READY_SECONDS
    while text not in path.read_text(encoding="utf-8", errors="replace"):
        if process.poll() is not None:
            pytest.fail(f"hookbus dev exited with {process.returncode}:\n{errors.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"hookbus dev was not ready within {DEV_READY_SECONDS:.0f} s:\n{errors.read_text()[-3000:]}")
        time.sleep(0.1)


def test_dev_runs_from_outside_the_checkout_and_accepts_a_send(installed: Installed, kafka_config: KafkaConfig) -> None:
    workdir = installed.home / "project"
    workdir.mkdir()
    out, err = installed.home / "dev.out", installed.home / "dev.err"
    prefix = kafka_config.raw_topic.removesuffix(".raw")
    arguments = [
        "dev",
        "--bootstrap",
        kafka_config.bootstrap_servers,
        "--topic-prefix",
        prefix,
        "--port",
        str(free_port()),
    ]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [installed.hookbus, *arguments], stdout=stdout, stderr=stderr, cwd=workdir, env=installed.environment()
        )
    try:
        _wait_for(out, "Try it", process, err)
        # The state is where the user started it, with paths that work from anywhere.
        assert f"Secrets   {workdir / 'var' / 'dev' / 'secrets.env'}" in out.read_text(encoding="utf-8")

        sent = installed.run("send", "october")

        assert sent.returncode == 0, sent.stderr
        assert re.fullmatch(r"update_request 200 id=\S+\n", sent.stdout), sent.stdout
        checked = installed.run("config", "check", str(workdir / "var" / "dev" / "config.yaml"))
        assert checked.returncode == 0, checked.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEV_STOP_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
