#!/usr/bin/env python3
"""The hookbus image's HEALTHCHECK, installed as ``hookbus-healthcheck``.

One image runs every ``hookbus`` subcommand, so the check first reads which one the
container runs: the command line of its first ``hookbus`` process (PID 1, or the child of an
init such as ``docker run --init``). A gateway (``hookbus gateway``, or ``hookbus dev``,
which runs one) is healthy when ``GET /healthz`` answers 200 on its port: ``--port`` from its
command line, else ``gateway.port`` of its configuration, else 8080. The normalizer and a sink
(``hookbus normalizer``, ``hookbus sink NAME``) are healthy when ``GET /healthz`` answers 200 on
their ops server, ``ops.port`` of their configuration; with no ops server (port 0), and for
any other subcommand, a process is healthy while it runs: it exits when it fails, and the
container's restart policy takes over.

Exit status 0 is healthy, 1 unhealthy, as Docker wants.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

HEALTHY = 0
UNHEALTHY = 1
DEFAULT_PORT = 8080
PROBE_TIMEOUT_SECONDS = 3.0
SERVING_COMMANDS = frozenset({"gateway", "dev"})
STAGE_COMMANDS = frozenset({"normalizer", "sink"})
NO_OPS_SERVER = 0
# Options of `hookbus` itself that take a value, so the value is not taken for the subcommand.
_TOP_LEVEL_OPTIONS_WITH_VALUE = frozenset({"--log-level", "--log-format"})


def command_line(pid: int) -> list[str]:
    """The arguments of process ``pid``, as the kernel keeps them (empty once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def hookbus_command_line(proc: Path = Path("/proc")) -> list[str]:
    """The command line of the container's first ``hookbus`` process (empty when none runs)."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        argv = command_line(pid)
        if hookbus_arguments(argv):
            return argv
    return []


def hookbus_arguments(argv: Sequence[str]) -> list[str]:
    """What follows the ``hookbus`` program in ``argv`` (``python /usr/local/bin/hookbus ...``)."""
    for index, part in enumerate(argv):
        name = os.path.basename(part)
        if name == "hookbus" or (name == "-m" and index + 1 < len(argv) and argv[index + 1] == "hookbus"):
            skip = 2 if name == "-m" else 1
            return list(argv[index + skip :])
    return []


def subcommand(arguments: Sequence[str]) -> tuple[str | None, list[str]]:
    """The subcommand in ``hookbus``'s arguments, and the arguments that follow it."""
    index = 0
    while index < len(arguments):
        part = arguments[index]
        if part in _TOP_LEVEL_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if not part.startswith("-"):
            return part, list(arguments[index + 1 :])
        index += 1
    return None, []


def option(arguments: Sequence[str], *names: str) -> str | None:
    """The value of the last ``--name value`` or ``--name=value`` among ``arguments``."""
    found = None
    for index, part in enumerate(arguments):
        for name in names:
            if part == name and index + 1 < len(arguments):
                found = arguments[index + 1]
            elif part.startswith(name + "="):
                found = part[len(name) + 1 :]
    return found


def gateway_port(command: str, arguments: Sequence[str]) -> int:
    explicit = option(arguments, "--port")
    if explicit is not None:
        return int(explicit)
    config = config_file(arguments)
    if command == "gateway" and config:
        from hookbus.config import load_config

        return load_config(config).gateway.port
    return DEFAULT_PORT


def config_file(arguments: Sequence[str]) -> str | None:
    return option(arguments, "--config", "-c") or os.environ.get("HOOKBUS_CONFIG")


def ops_port(arguments: Sequence[str]) -> int:
    """The stage's ``ops.port``; 0 (no ops server) without a configuration file."""
    config = config_file(arguments)
    if not config:
        return NO_OPS_SERVER
    from hookbus.config import load_config

    return load_config(config).ops.port


def probe(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed http:// URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check(argv: Sequence[str]) -> int:
    """The health of a container whose PID 1 runs ``argv``."""
    command, arguments = subcommand(hookbus_arguments(argv))
    if command not in SERVING_COMMANDS | STAGE_COMMANDS:
        return HEALTHY
    try:
        port = gateway_port(command, arguments) if command in SERVING_COMMANDS else ops_port(arguments)
    except Exception as exc:  # a configuration the service could not have started with either
        print(f"hookbus-healthcheck: cannot tell the {command}'s port: {exc}", file=sys.stderr)
        return UNHEALTHY
    if port == NO_OPS_SERVER:
        return HEALTHY
    url = f"http://127.0.0.1:{port}/healthz"
    if probe(url):
        return HEALTHY
    print(f"hookbus-healthcheck: {url} does not answer 200", file=sys.stderr)
    return UNHEALTHY


def main() -> int:
    return check(hookbus_command_line())


if __name__ == "__main__":
    raise SystemExit(main())
