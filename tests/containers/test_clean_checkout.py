"""The real docker-compose.yml, read by the real Compose, on a checkout as a clone has it.

Run by scripts/containers (see conftest.py) with the Compose it built; no daemon is asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

from tests.containers.conftest import DOCKER_ENV, SERVICES
from tests.support import REPO_ROOT


def test_a_clean_checkout_passes_compose_config_with_the_examples_values(tmp_path: Path) -> None:
    archive = tmp_path / "tree.tar"
    subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "-o", str(archive), "HEAD"], check=True, timeout=60)
    checkout = tmp_path / "hookbus"
    with tarfile.open(archive) as tree:
        tree.extractall(checkout, filter="data")
    assert not list((checkout / "deploy").glob("*.env"))

    result = subprocess.run(
        [os.environ[DOCKER_ENV], "compose", "--project-directory", str(checkout), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == set(SERVICES)
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "hookbus"
    assert services["gateway"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # Empty until the user's copy fills it in: the services refuse to start without it.
    assert services["gateway"]["environment"]["OCTOBER_WEBHOOK_KEY"] == ""
    assert services["console"]["environment"]["HOOKBUS_CONSOLE_TOKEN"] == ""
    # The console is published on the host's loopback only.
    published = [(port["host_ip"], str(port["published"]), port["target"]) for port in services["console"]["ports"]]
    assert published == [("127.0.0.1", "8091", 8091)]
