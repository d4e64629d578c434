"""The running compose stack that scripts/containers brought up, as the tests here drive it.

These tests need that stack, so they are collected only when the script runs them (it sets
``$HOOKBUS_STACK_PROJECT``); a plain ``pytest`` leaves this folder out. The script fails
when they fail, so in CI they are never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ENV = "HOOKBUS_STACK_PROJECT"
STACK_DIR_ENV = "HOOKBUS_STACK_DIR"
DOCKER_ENV = "HOOKBUS_DOCKER"
COMPOSE_FILES = ("docker-compose.yml", "deploy/compose.local-images.yaml")
SERVICES = ("kafka", "postgres", "gateway", "normalizer", "sink-postgres", "console")
_POLL_SECONDS = 2.0

if not os.environ.get(PROJECT_ENV):
    collect_ignore_glob = ["test_*.py"]


class StackError(AssertionError):
    """The stack did not do what a check waited for."""


@dataclass(frozen=True, slots=True)
class Stack:
    """``docker compose`` on the project scripts/containers started."""

    docker: str
    project: str
    directory: Path

    def compose(self, *arguments: str, check: bool = True, timeout: float = 300.0) -> str:
        files = [option for name in COMPOSE_FILES for option in ("-f", str(self.directory / name))]
        command = [self.docker, "compose", "--project-name", self.project, *files, *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise StackError(f"{' '.join(arguments)} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def compose_docker(self, *arguments: str) -> str:
        """A plain ``docker`` command on the stack's daemon (``inspect`` of a container)."""
        result = subprocess.run([self.docker, *arguments], capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise StackError(f"docker {' '.join(arguments)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def env_file(self, name: str) -> dict[str, str]:
        """The variables of ``deploy/<name>.env``, as the script filled it in."""
        values = {}
        for line in (self.directory / "deploy" / f"{name}.env").read_text(encoding="utf-8").splitlines():
            variable, equals, value = line.partition("=")
            if equals and not line.startswith("#"):
                values[variable] = value
        return values

    def containers(self) -> list[dict[str, object]]:
        output = self.compose("ps", "--all", "--format", "json")
        # One JSON object a line (Compose 2.21 and later).
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def health(self) -> dict[str, str]:
        """Service -> its health (``healthy``, ``unhealthy``, ``starting``), or its state when it has none."""
        return {str(c["Service"]): str(c.get("Health") or c["State"]) for c in self.containers()}

    def wait_health(self, wanted: dict[str, str], timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        health = self.health()
        while any(health.get(service) != state for service, state in wanted.items()):
            if time.monotonic() > deadline:
                raise StackError(f"waited {timeout:.0f} s for {wanted}; the services are {health}")
            time.sleep(_POLL_SECONDS)
            health = self.health()

    def psql(self, sql: str) -> str:
        """``sql`` run by psql in the postgres container, its rows unaligned."""
        database = self.env_file("postgres")
        return self.compose(
            "exec",
            "-T",
            "postgres",
            "psql",
            "-U",
            database["POSTGRES_USER"],
            "-d",
            database["POSTGRES_DB"],
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ).strip()

    def published_port(self, service: str, port: int) -> int:
        address = self.compose("port", service, str(port)).strip().splitlines()[0]
        return int(address.rsplit(":", 1)[1])


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack(os.environ[DOCKER_ENV], os.environ[PROJECT_ENV], Path(os.environ[STACK_DIR_ENV]))
