"""``hookbus console``."""

from __future__ import annotations

import argparse

from hookbus.cli import add_config_argument


class ConsoleCommand:
    name = "console"
    help = "Serve the web console and its API: the request log, events, dead letters and replay, deliveries."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from tools.console.service import main

        return main(args)


CONSOLE = ConsoleCommand()
