"""``hookbus sink <name>``."""

from __future__ import annotations

import argparse

from hookbus.cli import add_config_argument


class SinkCommand:
    name = "sink"
    help = "Run one sink instance of the configuration: consume the events topic, write in batches, commit after."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_argument(parser)
        parser.add_argument("name", help="the instance: a key of `sinks` in the configuration")

    def run(self, args: argparse.Namespace) -> int:
        from sinks.runner import main

        return main(args)


SINK = SinkCommand()
