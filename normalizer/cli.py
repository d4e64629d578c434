"""``hookbus normalizer``, ``hookbus normalize`` and ``hookbus replay``."""

from __future__ import annotations

import argparse

from hookbus.cli import add_config_argument


class NormalizerCommand:
    name = "normalizer"
    help = "Consume the raw topic, publish canonical CloudEvents keyed by entity, dead-letter what cannot be mapped."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from normalizer.service import main

        return main(args)


class NormalizeCommand:
    name = "normalize"
    help = "Offline: print the CloudEvents that requests in the vector format (or dumped raw events) map to."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_argument(parser, required=False)
        parser.add_argument("files", nargs="+", metavar="FILE")

    def run(self, args: argparse.Namespace) -> int:
        from normalizer.offline import main

        return main(args)


class ReplayCommand:
    name = "replay"
    help = "Send dead letters (or raw events) back through the normalizer, filtered, with a dry run."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from normalizer.replay import add_arguments

        add_config_argument(parser)
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from normalizer.replay import main

        return main(args)


NORMALIZER = NormalizerCommand()
NORMALIZE = NormalizeCommand()
REPLAY = ReplayCommand()
