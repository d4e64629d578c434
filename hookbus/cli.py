"""The ``hookbus`` command.

Subcommands are found through the ``hookbus.commands`` entry point group, so the CLI
imports a service only when it is asked to run it. Each entry point is a :class:`Command`.
A configuration error ends the process with exit code 2 and one line on stderr. Logging is
set up here, once, before the command runs (``--log-level`` and ``--log-format`` are taken
before or after the command's name).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, runtime_checkable

from hookbus import __version__
from hookbus.config import CONFIG_ENV
from hookbus.errors import ConfigError
from hookbus.logging import LogOptions, add_logging_arguments, configure_logging

__all__ = [
    "COMMAND_GROUP",
    "EXIT_CONFIG_ERROR",
    "Command",
    "add_config_argument",
    "build_parser",
    "main",
]

COMMAND_GROUP = "hookbus.commands"
EXIT_CONFIG_ERROR = 2


@runtime_checkable
class Command(Protocol):
    """A subcommand: it adds its arguments to its parser and runs, returning an exit code."""

    name: str
    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def add_config_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The ``--config`` option every service takes, defaulting to ``$HOOKBUS_CONFIG``."""
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get(CONFIG_ENV),
        required=required and not os.environ.get(CONFIG_ENV),
        help=f"the configuration file (default: ${CONFIG_ENV})",
    )


def _command_entry_points() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=COMMAND_GROUP)}


def _load(entry: EntryPoint) -> Command:
    command = entry.load()
    if not isinstance(command, Command):
        raise TypeError(f"entry point {entry.value} is not a hookbus command")
    return command


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookbus",
        description="Take webhooks in safely, keep every accepted one, hand them on as CloudEvents.",
    )
    parser.add_argument("--version", action="version", version=f"hookbus {__version__}")
    add_logging_arguments(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    available = _command_entry_points()
    # Only the command being run is imported; `hookbus --help` imports them all to list them.
    names = [wanted] if wanted in available else sorted(available)
    for name in names:
        command = _load(available[name])
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        add_logging_arguments(sub, keep_parent_default=True)
        command.configure(sub)
        sub.set_defaults(handler=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    wanted = next((item for item in arguments if not item.startswith("-")), None)
    parser = build_parser(wanted)
    args = parser.parse_args(arguments)
    command: Command = args.handler
    options = LogOptions.from_args(args)
    configure_logging(options.level, log_format=options.log_format)
    try:
        return command.run(args)
    except ConfigError as exc:
        print(f"hookbus: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
