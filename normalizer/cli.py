"""``hookbus normalizer``."""

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


NORMALIZER = NormalizerCommand()
