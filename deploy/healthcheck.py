#!/usr/bin/env python3
"""The hookbus image's HEALTHCHECK, installed as ``hookbus-healthcheck``.

A container is healthy while its service can do its work, which ``GET /readyz`` tells:
200, or, for a gateway, 503 whose only reason is ``spool_draining`` (the spool takes the
webhooks in while Kafka catches up). A stage whose Kafka or destination does not answer (a
sink that cannot reach PostgreSQL) is unhealthy, and the check prints the reasons.

One image runs every ``hookbus`` subcommand, so the check first reads which one the
container runs: the command line of its first ``hookbus`` process (PID 1, or the child of an
init such as ``docker run --init``). A gateway (``hookbus gateway``, or ``hookbus dev``,
which runs one) serves ``/readyz`` on its port: ``--port`` from its command line, else
``gateway.port`` of its configuration, else 8080. The normalizer and a sink (``hookbus
normalizer``, ``hookbus sink NAME``) serve it on their ops server, ``ops.port`` of their
configuration; with no ops server (port 0), and for any other subcommand, a process is
healthy while it runs: it exits when it fails, and the container's restart policy takes over.
The console (``hookbus console``) serves it on its own listener, ``console.port`` of its
configuration (8091 by default), ready while its index is fed.

Exit status 0 is healthy, 1 unhealthy, as Docker wants.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

HEALTHY = 0
UNHEALTHY = 1
DEFAULT_PORT = 8080
DEFAULT_CONSOLE_PORT = 8091
PROBE_TIMEOUT_SECONDS = 3.0
SERVING_COMMANDS = frozenset({"gateway", "dev"})
STAGE_COMMANDS = frozenset({"normalizer", "sink"})
CONSOLE_COMMAND = "console"
NO_OPS_SERVER = 0
# Not ready, yet doing its work: a gateway whose spool holds what Kafka has not acknowledged.
GATEWAY_WORKING_REASONS = frozenset({"spool_draining"})
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


def console_port(arguments: Sequence[str]) -> int:
    """``console.port`` of the configuration, read as the console reads it (its token included)."""
    config = config_file(arguments)
    if not config:
        return DEFAULT_CONSOLE_PORT
    from hookbus.config import load_config
    from tools.console import console_settings

    return console_settings(load_config(config)).port


def probe(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> tuple[int, list[str]]:
    """The status of ``GET url`` and the ``reasons`` of its JSON body; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed http:// URL
            return response.status, _reasons(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _reasons(error.read())
    except (urllib.error.URLError, OSError, ValueError):
        return 0, []


def _reasons(body: bytes) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    reasons = document.get("reasons") if isinstance(document, dict) else None
    return [str(reason) for reason in reasons] if isinstance(reasons, list) else []


def check(argv: Sequence[str]) -> int:
    """The health of a container whose PID 1 runs ``argv``."""
    command, arguments = subcommand(hookbus_arguments(argv))
    if command not in SERVING_COMMANDS | STAGE_COMMANDS | {CONSOLE_COMMAND}:
        return HEALTHY
    try:
        if command in SERVING_COMMANDS:
            port = gateway_port(command, arguments)
        elif command == CONSOLE_COMMAND:
            port = console_port(arguments)
        else:
            port = ops_port(arguments)
    except Exception as exc:  # a configuration the service could not have started with either
        print(f"hookbus-healthcheck: cannot tell the {command}'s port: {exc}", file=sys.stderr)
        return UNHEALTHY
    if port == NO_OPS_SERVER:
        return HEALTHY
    url = f"http://127.0.0.1:{port}/readyz"
    status, reasons = probe(url)
    working = GATEWAY_WORKING_REASONS if command in SERVING_COMMANDS else frozenset()
    if status == 200 or (status == 503 and reasons and set(reasons) <= working):
        return HEALTHY
    answer = f"{status}, reasons: {', '.join(reasons) or 'none given'}" if status else "nothing"
    print(f"hookbus-healthcheck: {url} answers {answer}", file=sys.stderr)
    return UNHEALTHY


def main() -> int:
    return check(hookbus_command_line())


if __name__ == "__main__":
    raise SystemExit(main())
