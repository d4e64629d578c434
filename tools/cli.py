"""``hookbus verify``, ``hookbus normalize``, ``hookbus replay`` and ``hookbus requests``: tools that
judge, map or resend events with the stages' own code, offline or against a running pipeline, and
read what the gateway answered."""

from __future__ import annotations

import argparse

from hookbus.cli import add_config_argument


class VerifyCommand:
    name = "verify"
    help = "Judge requests in the signed-request vector format with the gateway's own decision code."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="JSON files: lists of vector entries")

    def run(self, args: argparse.Namespace) -> int:
        from tools.vectors import main

        return main(args)


class NormalizeCommand:
    name = "normalize"
    help = "Offline: print the CloudEvents that requests in the vector format (or dumped raw events) map to."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_argument(parser, required=False)
        parser.add_argument("files", nargs="+", metavar="FILE")

    def run(self, args: argparse.Namespace) -> int:
        from tools.normalize import main

        return main(args)


class ReplayCommand:
    name = "replay"
    help = "Send dead letters (or raw events) back through the normalizer, filtered, with a dry run."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from tools.replay import add_arguments

        add_config_argument(parser)
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from tools.replay import main

        return main(args)


class RequestsCommand:
    name = "requests"
    help = "What the gateway answered (accepted or refused, and why), from its request log, newest first."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from tools.requests import add_arguments

        add_config_argument(parser)
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from tools.requests import main

        return main(args)


VERIFY = VerifyCommand()
NORMALIZE = NormalizeCommand()
REPLAY = ReplayCommand()
REQUESTS = RequestsCommand()
