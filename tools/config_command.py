"""``hookbus config``: the configuration file as a whole.

``hookbus config schema`` prints the JSON Schema of the file, so an editor checks it while
it is written; ``hookbus config check [FILE]`` checks a file as every service would at
startup (the core, the providers' options, the normalizer's section, each sink's and the
console's when there is one) and prints ``ok``, or the one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hookbus.config import CONFIG_ENV, config_schema, load_config


def file_schema() -> dict[str, Any]:
    """The schema of the file with the sections of this installation's normalizer and sink types."""
    from normalizer.settings import NormalizerSettings
    from sinks.configure import RunnerSettings, load_sink_type, sink_types
    from tools.console.settings import ConsoleSettings

    sinks = {name: load_sink_type(entry).settings for name, entry in sorted(sink_types().items())}
    return config_schema(
        normalizer=NormalizerSettings, sink_runner=RunnerSettings, sinks=sinks, console=ConsoleSettings
    )


def check_file(path: str | None) -> None:
    """Everything the services check at startup; :class:`~hookbus.errors.ConfigError` if anything is wrong."""
    from ingest.decision import check_sources
    from normalizer.settings import parse_settings
    from sinks.configure import configure_sink

    config = load_config(path)
    check_sources(config.sources, file=config.path)
    parse_settings(config.normalizer, path=config.path)
    for name in config.sinks:
        configure_sink(config, name)
    if config.console:
        from tools.console.settings import console_settings

        console_settings(config)


class ConfigCommand:
    name = "config"
    help = "Print the JSON Schema of the configuration file, or check a file as the services would."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        schema = actions.add_parser("schema", help="print the JSON Schema (draft 2020-12) of the configuration file")
        schema.add_argument("--output", "-o", type=Path, help="write it to this file (default: standard output)")
        check = actions.add_parser("check", help="check a configuration file; print ok or the error (exit code 2)")
        check.add_argument("file", nargs="?", metavar="FILE", help=f"the configuration file (default: ${CONFIG_ENV})")

    def run(self, args: argparse.Namespace) -> int:
        if args.action == "check":
            check_file(args.file)
            print("ok")
            return 0
        text = json.dumps(file_schema(), indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text, encoding="utf-8")
        return 0


CONFIG = ConfigCommand()
