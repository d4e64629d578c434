"""``hookbus gateway``."""

from __future__ import annotations

import argparse

from hookbus.cli import add_config_argument


class GatewayCommand:
    name = "gateway"
    help = "Serve POST /webhooks/{source}: verify, publish to Kafka, answer once Kafka acknowledged."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_argument(parser)
        parser.add_argument("--host", help="listen address (default: gateway.host from the config)")
        parser.add_argument("--port", type=int, help="listen port (default: gateway.port from the config)")
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="processes sharing the port with SO_REUSEPORT, each with its own Kafka producer (default: 1)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from ingest.server import main

        return main(args)


GATEWAY = GatewayCommand()
