"""Fresh Debian systems in containers, as ``scripts/containers fresh-debian`` made them.

A container per test, from an image with nothing on it but Debian's minimal system, sudo and
the users below, the checkout unpacked from ``git archive HEAD`` into each user's home and the
host's CA certificates mounted where update-ca-certificates takes them. These tests need the
script's Docker daemon and images, so they are collected only when it runs them (it sets
``$HOOKBUS_FRESH_SUITES``); a plain ``pytest`` leaves this folder out. The script fails when
they fail, so they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

SUITES_ENV = "HOOKBUS_FRESH_SUITES"
# The users whose tests run (all three unless the script was told fewer: `--users`).
USERS_ENV = "HOOKBUS_FRESH_USERS"
TREE_ENV = "HOOKBUS_FRESH_TREE"
CA_DIR_ENV = "HOOKBUS_FRESH_CA_DIR"
DOCKER_ENV = "HOOKBUS_DOCKER"
# The users the image has (scripts/containers, fresh_image): root, one with passwordless sudo, one without.
ROOT_USER = "root"
SUDO_USER = "sudoer"
PLAIN_USER = "plain"
TREE_IN_CONTAINER = "/run/hookbus/tree.tar"
CA_DIR_IN_CONTAINER = "/usr/local/share/ca-certificates/host"
# What scripts/containers removes, should a test have left its container behind (killed).
CONTAINER_LABEL = "hookbus-fresh"

if not os.environ.get(SUITES_ENV):
    collect_ignore_glob = ["test_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fresh_user(name): the user of the fresh system a test is about")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Only the tests of the users `scripts/containers fresh-debian --users` names, the others
    reported as deselected."""
    wanted = set(os.environ.get(USERS_ENV, f"{ROOT_USER} {SUDO_USER} {PLAIN_USER}").split())
    kept, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("fresh_user")
        (kept if marker is None or marker.args[0] in wanted else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


class FreshDebianError(AssertionError):
    """A command in the container did not do what the test expected of it."""


def home(user: str) -> str:
    return "/root" if user == ROOT_USER else f"/home/{user}"


def checkout(user: str) -> str:
    """Where ``user``'s copy of the tree is, as if they had cloned it into their home."""
    return f"{home(user)}/hookbus"


@dataclass(frozen=True, slots=True)
class FreshDebian:
    """One running container of a fresh Debian ``suite``."""

    docker: str
    container: str
    suite: str

    def _exec(self, user: str, script: str, *, directory: str, detach: bool = False) -> list[str]:
        # A login shell, so each user has the PATH and HOME a terminal of theirs would have.
        options = ["--user", user, "--workdir", directory, "--env", f"HOME={home(user)}"]
        return [self.docker, "exec", *(["--detach"] if detach else []), *options, self.container, "bash", "-lc", script]

    def run(
        self, user: str, script: str, *, directory: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """``script`` run by bash as ``user`` in ``directory`` (their checkout unless given)."""
        return subprocess.run(
            self._exec(user, script, directory=directory or checkout(user)),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, user: str, script: str) -> subprocess.Popen[str]:
        """``script`` started as ``user`` in their checkout, its output (stderr too) on a pipe."""
        return subprocess.Popen(
            self._exec(user, script, directory=checkout(user)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def check(self, user: str, script: str, *, directory: str | None = None, timeout: float = 120.0) -> str:
        result = self.run(user, script, directory=directory, timeout=timeout)
        if result.returncode != 0:
            raise FreshDebianError(
                f"{script!r} as {user} on {self.suite} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout


def _suites() -> list[str]:
    return os.environ.get(SUITES_ENV, "").split()


@pytest.fixture(params=_suites())
def fresh(request: pytest.FixtureRequest) -> Iterator[FreshDebian]:
    """A container of a brand-new Debian, every user's checkout unpacked, removed afterwards."""
    docker, suite = os.environ[DOCKER_ENV], str(request.param)
    mounts = [
        f"type=bind,src={os.environ[TREE_ENV]},dst={TREE_IN_CONTAINER},readonly",
        f"type=bind,src={os.environ[CA_DIR_ENV]},dst={CA_DIR_IN_CONTAINER},readonly",
    ]
    started = subprocess.run(
        [
            docker,
            "run",
            "--detach",
            f"--label={CONTAINER_LABEL}",
            *(f"--mount={m}" for m in mounts),
            f"hookbus-fresh/{suite}:latest",
            "sleep",
            "infinity",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    machine = FreshDebian(docker, started.stdout.strip(), suite)
    try:
        for user in (ROOT_USER, SUDO_USER, PLAIN_USER):
            unpack = f"mkdir -p {checkout(user)} && tar -C {checkout(user)} -xf {TREE_IN_CONTAINER}"
            machine.check(user, unpack, directory="/")
        yield machine
    finally:
        subprocess.run([docker, "rm", "--force", machine.container], capture_output=True, timeout=60, check=False)
